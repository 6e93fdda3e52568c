"""Importing a CD through the web against C-STORE ingest, in the same run (issue 17).

    .venv/bin/python benchmarks/import.py [--files 500] [--rounds 1]

Builds a File-set of ``--files`` CT instances of ~40 KB (pydicom's CT_small.dcm under new
UIDs) with its DICOMDIR (pydicom FileSet, PS3.10 8), then, against one throw-away database,
one Celery worker (prefork, concurrency 2) and one storage root:

- C-STORE: dcmtk's storescu sends the File-set's files over one association to
  ``manage.py dicom_listener`` (as benchmarks/ingest.py starts it);
- web: the same folder, DICOMDIR and all, POSTed as one multipart/form-data request to
  ``/api/v1/uploads`` under gunicorn (what the drop zone sends: each file and its path), which
  reads the DICOMDIR and receives each file it lists through the same ``file_receive``.

Each rate is images/s from the first byte sent until every instance is indexed (Instance rows);
the web's is also shown until its answer. Target: the web import at least the C-STORE rate.
The database and storage are dropped at the end.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.harness import PYTHON, ROOT, fmt, start, stop, wait_for  # noqa: E402
from benchmarks.ingest import STORESCU, Database, Vetpacs, ct_small_path, storescu_args  # noqa: E402

KEY_SCRIPT = (
    "from integrations.api.clients import api_client_create\n"
    "from vetclinic.audit.services import Actor\n"
    "print(api_client_create(actor=Actor.system('bench'), name='bench-import', scopes=['studies:write'],"
    " rate_limit=100000)[1])\n"
)


def file_set_build(folder: Path, count: int) -> list[Path]:
    """``count`` CT instances in 4 studies, written as a File-set with its DICOMDIR."""
    from pydicom import dcmread
    from pydicom.fileset import FileSet
    from pydicom.uid import generate_uid

    studies = [generate_uid() for _ in range(4)]
    series = [generate_uid() for _ in range(4)]
    file_set = FileSet()
    for i in range(count):
        ds = dcmread(ct_small_path())
        ds.StudyInstanceUID, ds.SeriesInstanceUID = studies[i % 4], series[i % 4]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID, ds.PatientName = f"IMPORT-{i % 4}", f"Bench^Dog {i % 4}"
        ds.InstanceNumber = i + 1
        file_set.add(ds)
    file_set.write(folder)
    return [Path(instance.path) for instance in FileSet(folder / "DICOMDIR")]


def cstore(listener: Vetpacs, paths: list[Path], db: Database, timeout: float) -> float:
    """Seconds from the first byte until all are indexed."""
    list_file = listener.log.with_name("cstore-files.txt")
    list_file.write_text("")
    began = time.perf_counter()
    sent = subprocess.run(
        storescu_args(listener.port, paths), capture_output=True, text=True, timeout=timeout, check=False
    )
    if sent.returncode:
        raise RuntimeError(f"storescu failed: {sent.stdout[-500:]}{sent.stderr[-500:]}")
    wait_for(lambda: db.instances() >= len(paths), timeout=timeout, interval=0.05, what="C-STORE indexing")
    return time.perf_counter() - began


def web(
    port: int, key: str, folder: Path, db: Database, expected: int, timeout: float
) -> tuple[float, float]:
    """Seconds until the upload's answer, and until all are indexed."""
    import requests

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    fields = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in files]
    paths = [("paths", f"CD/{p.relative_to(folder).as_posix()}") for p in files]
    request = requests.Request(
        "POST", f"http://{harness.HOST}:{port}/api/v1/uploads", files=fields, data=paths,
        headers={"Authorization": f"Bearer {key}"},
    ).prepare()  # fmt: skip  # (the body is built before the clock starts, as a browser has its files)
    with requests.Session() as session:
        began = time.perf_counter()
        answer = session.send(request, timeout=timeout)
        answered = time.perf_counter() - began
    if answer.status_code != 201:
        raise RuntimeError(f"upload answered {answer.status_code}: {answer.text[:500]}")
    body = answer.json()
    if len(body["stored"]) != expected:
        raise RuntimeError(f"upload stored {len(body['stored'])} of {expected}: {body['refused'][:3]}")
    wait_for(lambda: db.instances() >= expected, timeout=timeout, interval=0.05, what="web import indexing")
    return answered, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500, help="instances in the File-set (default 500)")
    parser.add_argument("--rounds", type=int, default=1, help="C-STORE and web take turns this many times")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one import may take")
    args = parser.parse_args()
    if not os.access(STORESCU, os.X_OK):
        raise SystemExit(f"{STORESCU} not found: install dcmtk")
    workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-import-"))
    storage_root = workdir / "storage"
    storage_root.mkdir()
    cd = workdir / "cd"
    paths = file_set_build(cd, args.files)
    warm = workdir / "warm"
    warm_paths = file_set_build(warm, 1)
    nbytes = sum(p.stat().st_size for p in paths)
    print(f"File-set {cd}: {len(paths)} CT files, {nbytes / 1e6:.1f} MB, with its DICOMDIR", flush=True)
    queue = f"bench-{uuid.uuid4().hex[:10]}"
    db = Database(os.environ.get("DATABASE_URL", ""), workdir)
    worker = None
    try:
        env = {
            **os.environ, "DATABASE_URL": db.url, "STORAGE_ROOT": str(storage_root), "STORAGE_BACKEND": "file",
            "CELERY_QUEUE": queue, "DICOM_ALLOW_ANY_AE": "true", "DICOM_AE_TITLE": "VETPACS", "DEBUG": "false",
            "SECRET_KEY": uuid.uuid4().hex * 2, "LOG_LEVEL": "INFO", "GUNICORN_CMD_ARGS": "--timeout 600",
            # Plain HTTP on 127.0.0.1, as behind the clinic's TLS proxy: not redirected to https.
            "ALLOWED_HOSTS": harness.HOST, "SECURE_SSL_REDIRECT": "false", "VAR_DIR": str(workdir / "var"),
        }  # fmt: skip
        db.migrate(env)
        db.reset()
        key = subprocess.run(
            [PYTHON, "manage.py", "shell", "-c", KEY_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
            check=True, timeout=120,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        worker = start(
            [PYTHON, "-m", "celery", "-A", "vetclinic", "worker", "--pool", "prefork", "--concurrency", "2",
             "-Q", queue, "-l", "WARNING", "-n", f"{queue}@%h"],
            env=env, log=workdir / "worker.log",
        )  # fmt: skip
        rows = []
        with (
            Vetpacs(workdir, 1, env, db, warm_paths[0], queue) as listener,
            harness.Gunicorn("vetclinic.wsgi:application", workdir, env, workers=1, threads=4) as server,
        ):
            # Warm the web side up end to end too, as the listener is (its first request loads
            # the modules and connects to the database), then start clean.
            web(server.port, key, warm, db, 1, args.timeout)
            listener.reset()
            for _ in range(args.rounds):
                store_s = cstore(listener, paths, db, args.timeout)
                listener.reset()
                answered_s, web_s = web(server.port, key, cd, db, len(paths), args.timeout)
                listener.reset()
                rows.append((len(paths) / store_s, len(paths) / answered_s, len(paths) / web_s))
                print(f"  round: C-STORE {rows[-1][0]:.1f} img/s indexed; web {rows[-1][1]:.1f} img/s answered,"
                      f" {rows[-1][2]:.1f} img/s indexed", flush=True)  # fmt: skip
        cstore_rate = harness.med([r[0] for r in rows])
        web_answer = harness.med([r[1] for r in rows])
        web_rate = harness.med([r[2] for r in rows])
        print(harness.table(
            ["import of a DICOMDIR File-set", "img/s until indexed", "img/s until answered"],
            [["C-STORE (storescu, 1 association)", fmt(cstore_rate, ".1f"), "-"],
             ["web upload (/api/v1/uploads)", fmt(web_rate, ".1f"), fmt(web_answer, ".1f")]],
        ))  # fmt: skip
        print(harness.target("web import vs C-STORE ingest (img/s until indexed)",
                             f"{web_rate / cstore_rate:.2f}x", ">= 1.00x", web_rate >= cstore_rate))  # fmt: skip
        return 0
    finally:
        if worker is not None:
            stop(worker)
        harness.cleanup([db], workdir)


if __name__ == "__main__":
    sys.exit(main())
