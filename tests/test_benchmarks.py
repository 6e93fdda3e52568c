"""The benchmark scripts still import, and the harness's figures are computed as documented.

The benchmarks themselves run for minutes and are not run here (benchmarks/README.md); this
catches a script broken by a change elsewhere (a renamed function it imports, a moved module)
and the harness's own arithmetic.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import harness

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


def test_every_benchmark_module_imports_in_a_fresh_interpreter():
    # A fresh interpreter, as `python benchmarks/<name>.py` starts: api_server sets its own
    # URLconf when imported, which must not leak into this test session.
    assert {"api", "api_server", "harness", "hl7", "hl7_baseline", "ingest", "search", "worklist"} <= set(
        MODULES
    )
    # (By import_module: "import" is a keyword, and benchmarks/import.py is a module all the same.)
    code = "import importlib; " + "; ".join(
        f"importlib.import_module('benchmarks.{name}')" for name in MODULES
    )
    code += "; print('imported')"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("imported")


def test_percentile_is_the_nearest_rank():
    values = list(range(1, 21))  # 1..20, shuffled order does not matter
    assert harness.percentile(reversed(values), 0.95) == 19
    assert harness.percentile(values, 0.5) == 10
    assert harness.percentile(values, 1.0) == 20
    assert harness.percentile([7.5], 0.95) == 7.5
    assert math.isnan(harness.percentile([], 0.95))


def test_span_gives_the_median_and_the_range():
    assert harness.span([3.0, 1.0, 2.0], ".1f") == "2.0 [1.0–3.0]"
    assert harness.span([], ".1f") == "-"
    assert math.isnan(harness.med([]))
    assert harness.fmt(None, ".2f") == "-"


def test_table_aligns_the_label_columns_left_and_the_figures_right():
    text = harness.table(
        ["kind", "p50 ms"], [["name", "1.5"], ["typical query", "12.25"], ["x", "3.0", "ERROR"]]
    )
    assert text.splitlines() == [
        "  kind          p50 ms",
        "  name             1.5",
        "  typical query  12.25",
        "  x                3.0 ERROR",
    ]
    ruled = harness.table(
        ["a", "n", "who"], [["x", "1", "me"], ["y", "10", "you"]], left=(0, 2), indent="", rule=True
    )
    assert ruled.splitlines() == ["a  n who", "--------", "x  1 me", "y 10 you"]


def test_target_line_says_met_or_not_met():
    assert (
        harness.target("search", "0.53x the baseline", ">= 0.5", True)
        == "  search: 0.53x the baseline; target >= 0.5: met"
    )
    assert harness.target("one connection", "112.8/s", "at least 200", False).endswith(
        "target at least 200: not met"
    )


def test_cpu_time_and_machine_load_are_read_from_proc():
    sum(i * i for i in range(200_000))  # some CPU of our own
    assert harness.cpu_seconds(os.getpid()) > 0
    busy, total = harness.host_busy()
    assert 0 < busy <= total


def test_a_sqlite_database_is_a_file_in_the_work_dir(tmp_path):
    db = harness.Database("", "unit", workdir=tmp_path)
    assert (db.kind, db.name, db.url) == ("sqlite", None, f"sqlite:///{tmp_path / 'bench-unit.sqlite3'}")


def test_the_archive_plan_has_the_studies_and_instances_asked_for():
    from benchmarks.archive_corpus import plan_make

    plan = plan_make(60, 900, 40, seed=3)

    studies = plan["studies"]
    assert len(studies) == 60
    assert sum(s["count"] for study in studies for s in study["series"]) == 900
    assert plan["big"] is studies[-1] and plan["big"]["series"][0]["count"] == 40
    assert len({study["uid"] for study in studies}) == 60
    registered = {a["patient_id"] for a in plan["animals"]}
    linked = [study["animal"]["patient_id"] in registered for study in studies]
    assert True in linked and False in linked  # registered animals' studies and referrals' too
    assert plan_make(60, 900, 40, seed=3) == plan  # the same seed, the same archive


def test_the_viewer_benchmark_drives_both_viewers_once_in_its_tiny_mode(tmp_path):
    """benchmarks/viewer.py end to end on a tiny study: VetPACS under gunicorn on a throw-away
    PostgreSQL database, OHIF's prebuilt dist (fetched from the npm registry into var/ohif/ the
    first time) on the same origin, both opened in headless Chromium. The figures are not
    asserted (the script prints targets, never asserts them); that both viewers drew the DX (a
    first-image figure exists only once the page's canvas has non-black pixels) and stepped
    through the CT, and that none of OHIF's DICOMweb requests failed, are."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("DATABASE_URL", harness.DEFAULT_POSTGRES)
    done = subprocess.run(
        [harness.PYTHON, "benchmarks/viewer.py", "--runs", "1", "--dx-size", "128", "--ct-slices", "4",
         "--ct-size", "64", "--cine-seconds", "0.5", "--timeout", "90", "--shots", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    for viewer in ("VetPACS", "OHIF"):
        assert f"run 1, {viewer}: DX first image" in out, out[-3000:]
        # Each viewer read the CT's four frames from /dicomweb (Resource Timing, in the page).
        assert f"{viewer} DICOMweb requests, CT (last run): frames 4 " in out, out[-3000:]
    assert "  OHIF: nothing\n" in out, out[-3000:]  # no DICOMweb request of OHIF's failed
    assert "whole CT drawn: " in out


def test_send_benchmark_smoke(tmp_path):
    """benchmarks/send.py --smoke: five instances to a storescp by storescu and by our sender."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "benchmarks/send.py", "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ratio vetpacs/storescu:" in done.stdout and "img/s against storescu" in done.stdout


def test_the_import_benchmark_runs_end_to_end_on_a_tiny_file_set():
    """Smoke mode: 4 files through storescu and through /api/v1/uploads, the real processes
    (listener, worker, gunicorn), both rates measured and the target line printed."""
    from tests.conftest import tool_required

    tool_required("/usr/bin/storescu")
    done = subprocess.run(
        [sys.executable, "benchmarks/import.py", "--files", "4", "--timeout", "180"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "4 CT files" in done.stdout
    [web] = [line for line in done.stdout.splitlines() if "web upload (/api/v1/uploads)" in line]
    indexed, answered = (float(figure) for figure in web.split()[-2:])
    assert indexed > 0 and answered >= indexed
    assert "web import vs C-STORE ingest (img/s until indexed):" in done.stdout
