"""DICOM ingest throughput: our listener and Celery indexing against dcmtk's storescp and Orthanc.

    .venv/bin/python benchmarks/ingest.py [--small 2000] [--large 100] [--corpus DIR]
        [--only RECEIVER] [--sender nodelay|stock] [--assoc 1|4] [--corpora small|large] [--rounds N]
        [--no-diagnose] [--listener fast,plain]

Builds a corpus of distinct instances (CT of ~40 KB from pydicom's CT_small.dcm, DX of ~8 MB,
2 bytes a pixel, Explicit VR Little Endian), then sends it with dcmtk's storescu over one
association and over four parallel ones, with Nagle's algorithm off (TCP_NODELAY=1, which dcmtk
reads) and on (a stock sender), to:

- dcmtk's storescp writing files (the baseline; --fork for four associations);
- Orthanc, when it is installed (`make system-tools`; started as tests/orthanc.py starts it), with its
  own defaults in a temporary folder: it indexes into SQLite before it answers each C-STORE;
- `manage.py dicom_listener --processes 1` and, for four associations, `--processes 2`, with a
  real Celery worker (prefork, concurrency 2) indexing into a throw-away database; with
  ``--listener fast,plain`` once with its fast path (DICOM_FAST_PATH=true, the default) and once
  as plain pynetdicom (``vetpacs-1proc-plain``), and the ratio between the two.

It prints images/s and MB/s until C-STORE completes (storescu exits) and, for VetPACS, until
every instance is indexed (imaging.Instance rows), the ratio between the two and the ratios to
storescp and to Orthanc measured in the same run. The database is created for the run
(PostgreSQL when DATABASE_URL points at one, else a temporary SQLite file) and dropped at the
end, as is the storage root.
"""

import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.harness import (  # noqa: E402
    HOST,
    PYTHON,
    ROOT,
    cpu_seconds,
    fmt,
    free_port,
    host_busy,
    port_open,
    start,
    stop,
    tail,
    wait_for,
)
from tests.orthanc import ORTHANC, OrthancError  # noqa: E402
from tests.orthanc import Orthanc as OrthancServer  # noqa: E402

STORESCU = "/usr/bin/storescu"  # .venv/bin has pynetdicom's storescu under the same name
STORESCP = "/usr/bin/storescp"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
CORPUS_VERSION = 2
TABLES = [
    "imaging_instanceversion",
    "imaging_instance",
    "imaging_series",
    "imaging_study",
    "audit_auditentry",
]

REFERENCE = """\
Reference figures quoted in the issue (NOT measured here; 2-core machines like this one):
  Orthanc 1.10, 1 association:  ~140 small images/s (stock Nagle sender: ~11/s), ~117 MB/s large
  Orthanc 1.10, 4 associations: ~210-260 small images/s
  dcmtk storescp:               ~360 small images/s, ~500 MB/s large"""


# --- corpus -------------------------------------------------------------------------------------


def ct_small_path():
    import pydicom

    # The bundled file; get_testdata_file would try to download files that are not bundled.
    return Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def corpus_build(root, small, large):
    """The corpus under ``root``, reused when its manifest says it has the same shape."""
    want = {"version": CORPUS_VERSION, "small": small, "large": large}
    manifest = root / "manifest.json"
    if manifest.exists():
        if json.loads(manifest.read_text()) == want:
            return False
        shutil.rmtree(root)  # ours (it has our manifest), another shape
    elif root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists, is not empty and has no benchmark manifest: not touching it")
    root.mkdir(parents=True, exist_ok=True)
    _ct_build(root / "small", small, studies=20)
    _dx_build(root / "large", large, studies=max(1, large // 4))
    _ct_build(root / "warmup", 1, studies=1, prefix="WARM")
    manifest.write_text(json.dumps(want))
    return True


def _ct_build(folder, count, *, studies, prefix="BENCH"):
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    studies = max(1, min(studies, count))
    series_n = min(count, studies * 2)  # two series a study
    study_uids = [generate_uid() for _ in range(studies)]
    series_uids = [generate_uid() for _ in range(series_n)]
    ds = dcmread(ct_small_path())
    for i in range(count):
        study, series = i * studies // count, i * series_n // count
        uid = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uids[study], series_uids[series]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.PatientID, ds.PatientName = f"{prefix}-{study:03d}", f"Bench^Dog {study}"
        ds.AccessionNumber, ds.StudyID = f"B{study:06d}", str(study)
        ds.SeriesNumber, ds.InstanceNumber = series + 1, i + 1
        path = folder / f"part{i % 4}" / f"ct{i:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)


def _dx_build(folder, count, *, studies, size=2000):
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    studies = max(1, min(studies, count))
    series_n = min(count, studies * 2)
    study_uids = [generate_uid() for _ in range(studies)]
    series_uids = [generate_uid() for _ in range(series_n)]
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:size, 0:size]
    base = ((np.hypot(x - size / 2, y - size / 2) / size * 3000) + rng.integers(0, 600, (size, size))).astype(
        np.uint16
    )
    base = np.clip(base, 0, 4095).astype(np.uint16)
    for i in range(count):
        study, series = i * studies // count, i * series_n // count
        uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = DX_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = DX_IMAGE_STORAGE, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uids[study], series_uids[series]
        ds.PatientID, ds.PatientName = f"BENCHDX-{study:03d}", f"Bench^Dog DX {study}"
        ds.PatientSpeciesDescription = "Canine"
        ds.AccessionNumber, ds.StudyID = f"D{study:06d}", str(study)
        ds.StudyDate, ds.StudyTime = "20240105", "101500"
        ds.Modality, ds.PresentationIntentType, ds.ImageType = (
            "DX",
            "FOR PRESENTATION",
            ["ORIGINAL", "PRIMARY"],
        )
        ds.SeriesNumber, ds.InstanceNumber = series + 1, i + 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        image = base.copy()
        image[:4, :64] = i % 4096  # every file different
        ds.PixelData = image.tobytes()
        ds["PixelData"].VR = "OW"
        path = folder / f"part{i % 4}" / f"dx{i:04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)


def corpus_files(folder):
    return sorted(p for p in folder.rglob("*.dcm"))


# --- processes ----------------------------------------------------------------------------------


def connections_by_pid(port):
    """{pid: established connections} on our listening port, from ss (None without ss)."""
    if not shutil.which("ss"):
        return None
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    found = {}
    for line in out.splitlines():
        for part in line.split("pid=")[1:]:
            pid = int(part.split(",")[0])
            found[pid] = found.get(pid, 0) + 1
    return found


# --- database -----------------------------------------------------------------------------------


class Database(harness.Database):
    """The throw-away database (harness.Database), and what the benchmark reads and resets in it."""

    def __init__(self, url, workdir):
        super().__init__(url, "ingest", workdir=workdir)
        self.conn = None

    def _cursor(self):
        if self.conn is None:
            if self.kind == "postgresql":
                import psycopg

                self.conn = psycopg.connect(
                    urlunsplit(urlsplit(self.url)._replace(scheme="postgresql")), autocommit=True
                )
            else:
                self.conn = sqlite3.connect(self.django_name, timeout=20, isolation_level=None)
        return self.conn.cursor()

    def scalar(self, sql):
        cursor = self._cursor()
        cursor.execute(sql)
        return cursor.fetchone()[0]

    def instances(self):
        return self.scalar("SELECT count(*) FROM imaging_instance")

    def thumbnails_pending(self):
        return self.scalar("SELECT count(*) FROM imaging_series WHERE thumbnail_key = ''")

    def thumbnails_not_middle(self):
        """(series whose thumbnail is not of its middle image, series with a thumbnail).
        The key is thumbnails/series-<series pk>.<instance pk>.png (imaging/ingest/thumbnails.py)."""
        cursor = self._cursor()
        cursor.execute("SELECT series_id, id FROM imaging_instance ORDER BY series_id, instance_number, id")
        members = {}
        for series_id, instance_id in cursor.fetchall():
            members.setdefault(series_id, []).append(instance_id)
        cursor.execute("SELECT id, thumbnail_key FROM imaging_series WHERE thumbnail_key <> ''")
        rows = cursor.fetchall()
        bad = 0
        for series_id, key in rows:
            ids = members.get(series_id, [])
            rendered = int(key.rsplit("/", 1)[-1].split(".")[1])
            bad += bool(ids) and rendered != ids[len(ids) // 2]
        return bad, len(rows)

    def reset(self):
        cursor = self._cursor()
        if self.kind == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        else:
            for table in TABLES:
                cursor.execute(f"DELETE FROM {table}")

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        super().drop()


# --- receivers ----------------------------------------------------------------------------------


class Storescp:
    label = "storescp"

    def __init__(self, workdir, fork):
        name = "storescp-fork" if fork else "storescp"
        self.out = Path(workdir) / f"{name}-out"
        self.fork = fork
        self.port = free_port()
        self.log = Path(workdir) / f"{name}.log"
        self.proc = None

    def __enter__(self):
        self.out.mkdir(exist_ok=True)
        args = [STORESCP, "--output-directory", str(self.out), "-aet", "STORESCP", "-pdu", "131072", "-dhl"]
        # Nagle off on the receiving side too, as our listener sets TCP_NODELAY on its sockets:
        # without it storescp answers each small C-STORE a delayed ACK later (~22 images/s).
        env = os.environ.copy()
        env["TCP_NODELAY"] = "1"
        self.proc = harness.launch(
            args + (["--fork"] if self.fork else []) + [str(self.port)],
            env=env,
            log=self.log,
            ready=lambda: port_open(self.port),
            timeout=30,
            what="storescp",
        )
        return self

    def __exit__(self, *exc):
        stop(self.proc)

    def stored(self):
        return sum(1 for p in self.out.iterdir() if p.is_file())

    def reset(self):
        shutil.rmtree(self.out)
        self.out.mkdir()
        return {}

    def cpu(self):
        return cpu_seconds(self.proc.pid)


class Orthanc:
    """Orthanc as packaged (Debian's `orthanc`, started by tests/orthanc.py as the tests start
    it): its own defaults (SQLite index next to the files, fsync of the storage area, 16 KiB PDU,
    4 DICOM threads), on free ports, in a folder of ours, no plugins. It indexes before it
    answers a C-STORE, so its C-STORE time is its indexed time."""

    label = "orthanc"

    def __init__(self, workdir):
        # Its DICOM server is dcmtk's, which reads TCP_NODELAY too: Nagle off on its side, as on
        # storescp's and ours.
        self.server = OrthancServer(
            workdir, name="orthanc", dicomweb=False, env={**os.environ, "TCP_NODELAY": "1"}
        )
        self.port, self.log = self.server.dicom_port, self.server.log
        self.proc = None

    def __enter__(self):
        self._start()
        return self

    def _start(self):
        shutil.rmtree(self.server.root / "storage", ignore_errors=True)  # its log stays
        self.server.start()
        self.proc = self.server.proc
        harness.STARTED.append(self.proc)  # stopped by harness.stop_all() too, should a run fail

    def _statistics(self):
        try:
            return self.server.get("/statistics")
        except (OSError, OrthancError):
            return None

    def __exit__(self, *exc):
        stop(self.proc)

    def stored(self):
        stats = self._statistics()
        return int(stats["CountInstances"]) if stats else 0

    def reset(self):
        stop(self.proc)  # a fresh index and storage for the next run
        self._start()
        return {}

    def cpu(self):
        return cpu_seconds(self.proc.pid)


class Vetpacs:
    def __init__(self, workdir, processes, env, db, warmup, queue, fast=True):
        self.label = f"vetpacs-{processes}proc" + ("" if fast else "-plain")
        self.processes = processes
        self.env = {**env, "DICOM_FAST_PATH": "true" if fast else "false"}
        self.db, self.warmup, self.queue = db, warmup, queue
        self.port = free_port()
        self.log = Path(workdir) / f"listener-{self.label}.log"
        self.storage = Path(env["STORAGE_ROOT"])
        self.proc = None

    def __enter__(self):
        args = [
            PYTHON,
            "manage.py",
            "dicom_listener",
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--processes",
            str(self.processes),
        ]
        self.log.write_text("")

        def ready():  # the dispatcher listens, then each listener process says it is ready
            text = self.log.read_text()
            processes = text.count("DICOM listener process") if self.processes > 1 else 1
            return "DICOM listener VETPACS on" in text and processes >= self.processes

        self.proc = harness.launch(args, env=self.env, log=self.log, ready=ready, what="the listener")
        wait_for(lambda: port_open(self.port), timeout=30, what="the listener's port")
        # Warm up end to end (listener, broker, worker, database), then start clean.
        result = subprocess.run(
            storescu_args(self.port, [self.warmup]),
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode:
            raise RuntimeError(f"warm-up C-STORE failed: {result.stdout}{result.stderr}\n{tail(self.log)}")
        wait_for(
            lambda: self.db.instances() >= 1,
            timeout=120,
            what="the warm-up instance to be indexed (is the worker up?)",
        )
        self.reset()
        return self

    def __exit__(self, *exc):
        stop(self.proc)

    def stored(self):
        return self.db.instances()

    def reset(self):
        """Let the worker finish (thumbnails), then empty the index and the storage.
        Returns how long the worker still had work after the run, and the thumbnail check."""
        t0 = time.perf_counter()
        try:
            wait_for(
                lambda: self.db.thumbnails_pending() == 0 and queue_length(self.queue) == 0,
                timeout=180,
                interval=0.25,
                what="the worker to finish",
            )
        except TimeoutError as error:
            print(f"   note: {error}; resetting anyway", flush=True)
        facts = {"settle_s": time.perf_counter() - t0, "not_middle": self.db.thumbnails_not_middle()}
        self.db.reset()
        for child in self.storage.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        return facts

    def cpu(self):
        return cpu_seconds(self.proc.pid)


_redis = None


def queue_length(queue):
    """Messages waiting in the Celery queue (Redis broker only; 0 otherwise)."""
    global _redis
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        return 0
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(url)
    return _redis.llen(queue)


# --- one run ------------------------------------------------------------------------------------


def storescu_args(port, paths, called="VETPACS"):
    return [STORESCU, "-aet", "BENCHSCU", "-aec", called, "-ll", "warn", "+sd", "+r", HOST, str(port)] + [
        str(p) for p in paths
    ]


def run(receiver, *, folders, expected, nbytes, nodelay, timeout, indexes, worker):
    env = os.environ.copy()
    env.pop("TCP_NODELAY", None)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    called = {Storescp: "STORESCP", Orthanc: "ORTHANC"}.get(type(receiver), "VETPACS")
    logs = [Path(receiver.log).with_name(f"storescu-{n}.log") for n in range(len(folders))]
    cpu_before = receiver.cpu(), (cpu_seconds(worker.pid) if indexes else 0.0), host_busy()
    senders = []
    timeline = []
    result = {"expected": expected, "nbytes": nbytes, "timeout": False, "error": "", "spread": None}
    start_time = time.perf_counter()
    try:
        for folder, log in zip(folders, logs, strict=True):
            log.write_text("")
            senders.append(start(storescu_args(receiver.port, [folder], called), env=env, log=log))
        store_end = index_end = None
        next_poll = 0.0
        deadline = start_time + timeout
        while time.perf_counter() < deadline:
            now_ = time.perf_counter()
            if store_end is None and all(p.poll() is not None for p in senders):
                store_end = now_
            if (
                indexes
                and result["spread"] is None
                and now_ - start_time > 0.3
                and isinstance(receiver, Vetpacs)
            ):
                spread = connections_by_pid(receiver.port)
                if spread is not None and (sum(spread.values()) >= len(folders) or store_end is not None):
                    result["spread"] = spread
            if indexes and index_end is None and now_ >= next_poll:
                next_poll = now_ + 0.1
                count = receiver.stored()
                timeline.append((time.perf_counter() - start_time, count))
                if count >= expected:
                    index_end = time.perf_counter()
            if store_end is not None and (not indexes or index_end is not None):
                break
            time.sleep(0.01)
        else:
            result["timeout"] = True
        result["store_s"] = (store_end or time.perf_counter()) - start_time
        result["index_s"] = (index_end - start_time) if index_end else None
        if isinstance(receiver, Orthanc) and store_end is not None:
            result["index_s"] = result["store_s"]  # it indexes before it answers each C-STORE
        result["codes"] = [p.poll() for p in senders]
        if any(c for c in result["codes"]):
            result["error"] = f"storescu exit {result['codes']}: " + " | ".join(
                tail(log, 300).strip() for log in logs
            )
        result["stored"] = receiver.stored()
        for share in (50, 99):
            result[f"index{share}_s"] = next((t for t, c in timeline if c >= expected * share / 100), None)
        if result["stored"] < expected and not indexes:
            result["error"] += f" only {result['stored']}/{expected} stored"
        result["cpu_receiver"] = receiver.cpu() - cpu_before[0]
        result["cpu_worker"] = (cpu_seconds(worker.pid) - cpu_before[1]) if indexes else None
        busy, total = host_busy()
        result["host_busy"] = 100 * (busy - cpu_before[2][0]) / max(total - cpu_before[2][1], 1)
    finally:
        for proc in senders:
            stop(proc, timeout=5)
    result.update(receiver.reset())
    return result


def run_cell(receiver, label, info, corpus, assoc, sender, args, worker, workdir):
    """One send of one corpus to one receiver; prints a line, returns the result row."""
    if worker.poll() is not None:
        raise RuntimeError(f"the Celery worker exited: {tail(workdir / 'worker.log')}")
    indexes = isinstance(receiver, Vetpacs)
    folders = [info["root"]] if assoc == 1 else info["parts"]
    result = run(
        receiver,
        folders=folders,
        expected=info["files"],
        nbytes=info["bytes"],
        nodelay=sender == "nodelay",
        timeout=args.run_timeout,
        indexes=indexes,
        worker=worker,
    )
    result.update(corpus=corpus, sender=sender, assoc=assoc, receiver=label)
    spread = f" connections per listener pid {result['spread']}" if result["spread"] and assoc > 1 else ""
    extra = ""
    if indexes:
        bad, total = result["not_middle"]
        extra = (
            f" (50% at {fmt(result['index50_s'], '.1f')} s, 99% at {fmt(result['index99_s'], '.1f')} s);"
            f" worker busy {result['settle_s']:.1f} s more (thumbnails);"
            f" thumbnail not of the middle image in {bad}/{total} series"
        )
    print(
        f"  {corpus:<5} {sender:<7} {assoc} assoc -> {label:<14} C-STORE {result['store_s']:7.2f} s"
        f"  indexed {fmt(result['index_s'], '7.2f')} s{extra}{spread}"
        f"{'  TIMEOUT' if result['timeout'] else ''}"
        f"{('  ERROR ' + result['error']) if result['error'] else ''}",
        flush=True,
    )
    return result


# --- report -------------------------------------------------------------------------------------


def table(rows):
    """One line a run. Ratios: our rate over storescp's and over Orthanc's for the same corpus,
    sender and associations; "idx" rates count until every instance is indexed (Orthanc indexes
    before it answers, so its indexed rate is its C-STORE rate)."""

    def rate(r, key):
        return r["expected"] / r[key] if r and r.get(key) else None

    def ratio(a, b):
        return fmt(a / b if a and b else None, ".2f") + ("x" if a and b else "")

    base = {
        name: {(r["corpus"], r["sender"], r["assoc"]): r for r in rows if r["receiver"] == name}
        for name in ("storescp", "orthanc")
    }
    header = [
        "corpus",
        "sender",
        "assoc",
        "receiver",
        "img/s",
        "MB/s",
        "C-STORE s",
        "idx img/s",
        "idx/store",
        "vs scp",
        "vs orthanc",
        "idx vs orthanc",
        "rcv CPU%",
        "wrk CPU%",
        "host%",
    ]
    lines = []
    for r in rows:
        key = (r["corpus"], r["sender"], r["assoc"])
        scp, orthanc = base["storescp"].get(key), base["orthanc"].get(key)
        store_rate, index_rate = rate(r, "store_s"), rate(r, "index_s")
        receiver = r["receiver"] + ("+fork" if r["receiver"] == "storescp" and r["assoc"] > 1 else "")
        worker_cpu = (
            None if r["cpu_worker"] is None else 100 * r["cpu_worker"] / (r["index_s"] or r["store_s"])
        )
        line = [
            r["corpus"],
            r["sender"],
            r["assoc"],
            receiver,
            f"{store_rate:.1f}",
            f"{r['nbytes'] / 1e6 / r['store_s']:.1f}",
            f"{r['store_s']:.2f}",
            fmt(index_rate, ".1f"),
            fmt(r["index_s"] / r["store_s"] if r.get("index_s") else None, ".2f"),
            ratio(store_rate, rate(scp, "store_s")),
            ratio(store_rate, rate(orthanc, "store_s")),
            ratio(index_rate, rate(orthanc, "index_s")),
            f"{100 * r['cpu_receiver'] / r['store_s']:.0f}",
            fmt(worker_cpu, ".0f"),
            f"{r['host_busy']:.0f}",
        ]
        if r["timeout"]:
            line.append("TIMEOUT")
        if r["error"]:
            line.append(f"ERROR {r['error'][:200]}")
        lines.append(line)
    return harness.table(header, lines, left=(0, 1, 3), indent="", rule=True)


def targets(rows):
    """The issue's speed targets, against Orthanc measured in this run."""
    import statistics

    by = {}  # (receiver, corpus, sender, assoc) -> indexed times of its rounds
    for r in rows:
        if r.get("index_s") and not r["error"] and not r["timeout"]:
            by.setdefault((r["receiver"], r["corpus"], r["sender"], r["assoc"]), []).append(r)
    lines = [
        "Targets (issue 3), PostgreSQL and indexing included, against Orthanc measured above"
        " (with several rounds: medians, and each round's ratio):"
    ]
    cells = [
        ("small", "nodelay", 1, "vetpacs-1proc"),
        ("large", "nodelay", 1, "vetpacs-1proc"),
        ("small", "nodelay", 4, "vetpacs-2proc"),
        ("large", "nodelay", 4, "vetpacs-2proc"),
        ("small", "stock", 1, "vetpacs-1proc"),
    ]
    for corpus, sender, assoc, ours in cells + [(c, s, a, o + "-plain") for c, s, a, o in cells]:
        mine, theirs = by.get((ours, corpus, sender, assoc)), by.get(("orthanc", corpus, sender, assoc))
        if not mine or not theirs:
            continue
        expected = mine[0]["expected"]
        ours_s = statistics.median(r["index_s"] for r in mine)
        theirs_s = statistics.median(r["index_s"] for r in theirs)
        ratio = theirs_s / ours_s
        rounds = ", ".join(f"{t['index_s'] / m['index_s']:.2f}" for m, t in zip(mine, theirs, strict=False))
        goal = "ahead of" if assoc > 1 else "at least" if sender == "nodelay" else "several times"
        met = ratio > 1 if assoc > 1 else ratio >= 1 if sender == "nodelay" else ratio >= 3
        figure = (
            f"{ours} indexed {expected / ours_s:.1f} img/s, Orthanc {expected / theirs_s:.1f}: {ratio:.2f}x"
        )
        line = harness.target(f"{corpus} {sender} {assoc} assoc", figure, f"{goal} Orthanc", met)
        lines.append(line + (f"; rounds {rounds}" if len(mine) > 1 else ""))
    worst = max(
        (
            r["index_s"] / r["store_s"]
            for r in rows
            if r["receiver"].startswith("vetpacs") and r.get("index_s")
        ),
        default=None,
    )
    if worst is not None:
        lines.append(
            harness.target(
                "time until indexed / C-STORE time", f"worst {worst:.2f}x", "<= 1.2x", worst <= 1.2
            )
        )
    return "\n".join(lines)


def fast_vs_plain(rows):
    """What the fast path buys: its rates over plain pynetdicom's in the same cells (medians)."""
    import statistics

    by = {}
    for r in rows:
        if r["receiver"].startswith("vetpacs") and not r["error"] and not r["timeout"]:
            by.setdefault((r["receiver"], r["corpus"], r["sender"], r["assoc"]), []).append(r)
    lines = ["The fast path (DICOM_FAST_PATH=true) over plain pynetdicom (false), same cells:"]
    for (receiver, corpus, sender, assoc), fast in sorted(by.items()):
        plain = by.get((receiver + "-plain", corpus, sender, assoc))
        if receiver.endswith("-plain") or not plain:
            continue
        store = statistics.median(r["store_s"] for r in plain) / statistics.median(r["store_s"] for r in fast)
        indexed = (
            [r["index_s"] for r in fast if r.get("index_s")],
            [r["index_s"] for r in plain if r.get("index_s")],
        )
        index = statistics.median(indexed[1]) / statistics.median(indexed[0]) if all(indexed) else None
        lines.append(
            f"  {corpus} {sender} {assoc} assoc, {receiver}: C-STORE {store:.2f}x, indexed {fmt(index, '.2f')}x"
        )
    return "\n".join(lines)


# --- diagnosis: where the listener's and the indexer's time goes ------------------------------


class Sampler:
    """A poor man's sampling profiler: every few ms, the innermost Python frame of each thread
    but ours, counted by (thread kind, file, function, line). Sleeping shows as the line that
    called time.sleep; waiting on a socket as the line that called recv/select."""

    def __init__(self, interval=0.002):
        import threading

        self.interval, self.counts, self.samples = interval, {}, 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self):
        import threading

        own = {threading.get_ident(), threading.main_thread().ident}
        for _ in range(10_000_000):
            if self.stop_event.wait(self.interval):
                return
            # Association and DULServiceProvider threads, one pair per association.
            kinds = {
                t.ident: type(t).__name__
                for t in threading.enumerate()
                if t.name not in ("dicom-server", "sampler")
            }
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident in own or ident not in kinds:
                    continue
                key = (
                    kinds[ident],
                    Path(frame.f_code.co_filename).name,
                    frame.f_code.co_name,
                    frame.f_lineno,
                )
                self.counts[key] = self.counts.get(key, 0) + 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=5)

    def report(self, top=10):
        total = sum(self.counts.values()) or 1
        lines = []
        for (kind, file, func, line), n in sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"    {100 * n / total:5.1f}%  {kind:<22} {file}:{line} {func}")
        return "\n".join(lines)


def diagnose(env, folder, expected, db, timeout, large_files=()):
    """Our listener in this process, instrumented from outside (nothing in imaging/ changes):
    per-C-STORE time of each step, a sampled profile of the association threads, then the
    indexing of the same objects run serially here under cProfile."""
    import cProfile
    import io as _io
    import pstats
    import threading

    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.db import connections
    from pynetdicom import evt

    from imaging.dicom.net import handlers
    from imaging.dicom.net.ae import ae_build, server_start
    from imaging.ingest import index, queueing, receive, storage

    for name in ("pynetdicom", "imaging.dicom"):  # per-association and per-C-STORE lines, not wanted here
        logging.getLogger(name).setLevel(logging.WARNING)
    times = {}
    lock = threading.Lock()

    def timed(module, name, label):
        original = getattr(module, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                with lock:
                    times.setdefault(label, []).append(time.perf_counter() - t)

        setattr(module, name, wrapper)

    timed(receive, "_checked_header", "integrity walk + header parse")
    timed(storage, "object_put", "storage write + 2 fsyncs")
    timed(queueing, "instances_queue", "Celery publish (one task per batch)")
    timed(receive, "_file_meta", "file meta encode")
    timed(handlers, "instance_receive", "instance_receive (all of the above)")
    for n, (event, handler) in enumerate(handlers.HANDLERS):  # the same list ae.py imported
        if event is evt.EVT_C_STORE:
            original = handler

            def on_store(event, _original=original):
                t = time.perf_counter()
                try:
                    return _original(event)
                finally:
                    with lock:
                        times.setdefault("on_store handler (all of the above)", []).append(
                            time.perf_counter() - t
                        )

            handlers.HANDLERS[n] = (event, on_store)

    ae = ae_build(ae_title="VETPACS", max_pdu=settings.DICOM_MAX_PDU)
    port = free_port()
    server = server_start(ae, (HOST, port))
    sender_env = {**os.environ, "TCP_NODELAY": "1"}
    real_queue = queueing.instances_queue
    out = []

    def send(title, sample):
        times.clear()
        with Sampler() as sampler:
            t0 = time.perf_counter()
            sent = subprocess.run(
                storescu_args(port, [folder]), env=sender_env, capture_output=True, text=True, timeout=timeout
            )
            wall = time.perf_counter() - t0
        handler = times.get("on_store handler (all of the above)", [])
        n = len(handler) or 1
        out.append(
            f"  {title}: {len(handler)} CT in {wall:.2f} s = {len(handler) / wall:.0f}/s,"
            f" {1000 * wall / n:.2f} ms wall per image (storescu exit {sent.returncode})"
        )
        out.append(
            "    "
            + ", ".join(
                f"{label} {1000 * sum(values) / n:.2f}"
                for label, values in times.items()
                if "all of the above" not in label
            )
            + " ms/image"
        )
        out.append(
            "    instance_receive"
            f" {1000 * sum(times.get('instance_receive (all of the above)', [])) / n:.2f},"
            f" on_store {1000 * sum(handler) / n:.2f}, outside on_store"
            f" {1000 * (wall - sum(handler)) / n:.2f} ms/image"
            " (pynetdicom PDU/DIMSE work, reactor polling, storescu)"
        )
        if sample:
            out.append(
                f"    sampled innermost frames of the association threads ({sampler.samples} samples, 2"
                " ms apart):"
            )
            out.append(sampler.report(top=8))

    def quiet():
        wait_for(
            lambda: db.thumbnails_pending() == 0 and queue_length(env["CELERY_QUEUE"]) == 0,
            timeout=180,
            what="the worker",
        )
        db.reset()

    try:
        wait_for(lambda: port_open(port), timeout=30, what="the in-process listener")
        quiet()
        # A: the listener alone: indexing messages kept in a list, so no worker competes for the CPUs.
        captured = []  # the batches as the listener queued them, one task each
        queueing.instances_queue = captured.append
        send(
            "A. listener in-process alone (queue captured, worker idle), 1 association, nodelay sender",
            sample=True,
        )
        # B: indexing those same batches one after the other, here, as the task does, under
        # cProfile, counting queries.
        kinds = {}

        def count(execute, sql, params, many, context):
            word = sql.split(None, 1)[0].upper()
            kinds[word] = kinds.get(word, 0) + 1
            return execute(sql, params, many, context)

        profile = cProfile.Profile()
        with connections["default"].execute_wrapper(count):
            t0 = time.perf_counter()
            profile.enable()
            for messages in captured:
                index.instances_index(messages=messages)
            profile.disable()
            spent = time.perf_counter() - t0
        n = max(sum(len(messages) for messages in captured), 1)
        out.append(
            f"  B. indexing the same batches serially in-process: {n} instances in {len(captured)}"
            " instances_index calls"
            f" in {spent:.2f} s = {1000 * spent / n:.2f} ms an instance ({n / spent:.0f}/s on one core);"
            f" {sum(kinds.values()) / n:.2f} SQL statements an instance,"
            f" {sum(kinds.values()) / max(len(captured), 1):.1f} a batch"
            f" ({', '.join(f'{k} {v / n:.2f}' for k, v in sorted(kinds.items()))} an instance)"
        )
        stream = _io.StringIO()
        stats = pstats.Stats(profile, stream=stream)
        stats.sort_stats("cumulative").print_stats(re.escape(str(ROOT)) + "/(imaging|vetclinic|patients)", 8)
        body = [
            line
            for line in stream.getvalue().splitlines()
            if str(ROOT) in line and "site-packages" not in line
        ]
        out.append("    cProfile, our functions by cumulative time (ncalls tottime percall cumtime percall):")
        out.extend("    " + line.strip().replace(str(ROOT) + "/", "")[:140] for line in body[:8])
        psycopg_wait = sum(
            v[3]
            for k, v in stats.stats.items()
            if "psycopg" in k[0] and k[2] in ("wait", "_execute_send", "_exec_command")
        )
        out.append(
            f"    time in psycopg round trips (wait/send/exec_command): {1000 * psycopg_wait / n:.2f}"
            " ms per instance"
        )
        # C: what one thumbnail costs (the worker renders one per new series, between ingest tasks).
        from imaging.ingest import thumbnails
        from imaging.models import Series

        if large_files:
            captured.clear()
            subprocess.run(
                storescu_args(port, large_files[:2]),
                env=sender_env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            for messages in captured:
                index.instances_index(messages=messages)
        cost = {}
        for series in Series.objects.all():
            t0 = time.perf_counter()
            thumbnails.series_thumbnail_render(series_id=series.pk)
            cost.setdefault(series.modality, []).append(time.perf_counter() - t0)
        out.append(
            "  C. one series thumbnail, rendered here: "
            + ", ".join(
                f"{modality} {1000 * sum(v) / len(v):.0f} ms ({len(v)} series)"
                for modality, v in sorted(cost.items())
            )
        )
        connections.close_all()
        queueing.instances_queue = real_queue
        quiet()
        # D: as deployed: publish to Celery, the real worker indexing at the same time.
        send(
            "D. listener in-process, publishing to Celery while the worker indexes, 1 association, nodelay",
            sample=False,
        )
    finally:
        queueing.instances_queue = real_queue
        server.shutdown()
        ae.shutdown()
    return "\n".join(out)


# --- main ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000, help="CT instances of ~40 KB (default 2000)")
    parser.add_argument("--large", type=int, default=100, help="DX instances of ~8 MB (default 100)")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vetpacs-bench-corpus",
        help="where the corpus is built, reused when it has the same shape",
    )
    parser.add_argument(
        "--run-timeout", type=float, default=300, help="seconds one send may take (default 300)"
    )
    parser.add_argument(
        "--only",
        choices=["storescp", "orthanc", "vetpacs-1proc", "vetpacs-2proc"],
        action="append",
        help="run only these receivers (repeatable)",
    )
    parser.add_argument(
        "--sender",
        choices=["nodelay", "stock"],
        action="append",
        help="run only these senders (repeatable; default both)",
    )
    parser.add_argument(
        "--assoc",
        type=int,
        choices=[1, 4],
        action="append",
        help="run only these association counts (repeatable; default both)",
    )
    parser.add_argument(
        "--corpora",
        choices=["small", "large"],
        action="append",
        help="run only these corpora (repeatable; default both)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each cell this many times, the receivers taking turns; targets use the median (default 1)",
    )
    parser.add_argument(
        "--listener",
        default="fast",
        help="our listener with its fast path, as plain pynetdicom, or both: fast, plain or fast,plain"
        " (DICOM_FAST_PATH; default fast)",
    )
    parser.add_argument(
        "--diagnose",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the table's runs, profile our listener and indexing in this process",
    )
    args = parser.parse_args()
    listeners = args.listener.split(",")
    if not listeners or set(listeners) - {"fast", "plain"}:
        parser.error("--listener: fast, plain or fast,plain")
    for tool in (STORESCU, STORESCP):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} not found: install dcmtk")

    began = time.perf_counter()
    built = corpus_build(args.corpus, args.small, args.large)
    corpora = {}
    for name in ("small", "large"):
        files = corpus_files(args.corpus / name)
        parts = sorted(p for p in (args.corpus / name).iterdir() if p.is_dir()) if files else []
        corpora[name] = {
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "root": args.corpus / name,
            "parts": parts,
        }
    warmup = corpus_files(args.corpus / "warmup")[0]
    print(
        f"corpus {args.corpus} ({'built' if built else 'reused'}):"
        f" small {corpora['small']['files']} CT files, {corpora['small']['bytes'] / 1e6:.1f} MB;"
        f" large {corpora['large']['files']} DX files, {corpora['large']['bytes'] / 1e6:.1f} MB",
        flush=True,
    )

    workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-"))
    storage_root = workdir / "storage"
    storage_root.mkdir()
    queue = f"bench-{uuid.uuid4().hex[:10]}"
    db = None
    rows = []
    worker = None
    diagnosis = ""
    try:
        db = Database(os.environ.get("DATABASE_URL", ""), workdir)
        env = os.environ.copy()
        env.pop("TCP_NODELAY", None)
        env.update(
            {
                "DATABASE_URL": db.url,
                "STORAGE_ROOT": str(storage_root),
                "STORAGE_BACKEND": "file",
                "CELERY_QUEUE": queue,
                "DICOM_ALLOW_ANY_AE": "true",
                "DICOM_AE_TITLE": "VETPACS",
                "DEBUG": "false",
                "SECRET_KEY": uuid.uuid4().hex * 2,
                "LOG_LEVEL": "INFO",
            }
        )
        broker = env.get("CELERY_BROKER_URL", "filesystem:// (default)")
        print(
            f"database: {db.kind} {db.name or db.url}; broker: {broker}; queue {queue}; work dir {workdir}",
            flush=True,
        )
        db.migrate(env)
        db.reset()  # migrations may load data; start from empty imaging and audit tables
        worker = start(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "vetclinic",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "-Q",
                queue,
                "-l",
                "WARNING",
                "-n",
                f"{queue}@%h",
            ],
            env=env,
            log=workdir / "worker.log",
        )

        orthanc = os.access(ORTHANC, os.X_OK)
        receivers = {
            "storescp": lambda: Storescp(workdir, fork=False),
            "storescp+fork": lambda: Storescp(workdir, fork=True),
            **({"orthanc": lambda: Orthanc(workdir)} if orthanc else {}),
        }
        for kind in listeners:
            suffix = "" if kind == "fast" else "-plain"
            for processes in (1, 2):
                receivers[f"vetpacs-{processes}proc{suffix}"] = functools.partial(
                    Vetpacs, workdir, processes, env, db, warmup, queue, fast=kind == "fast"
                )
        # storescp forks for four associations; two listener processes only for four.
        serves = {
            "storescp": (1,),
            "storescp+fork": (4,),
            "orthanc": (1, 4),
            "vetpacs-1proc": (1, 4),
            "vetpacs-2proc": (4,),
        }
        serves.update(
            {f"{name}-plain": assocs for name, assocs in list(serves.items()) if name.startswith("vetpacs")}
        )
        wanted = [
            name
            for name in receivers
            if not args.only or name.split("+")[0].removesuffix("-plain") in args.only
        ]
        with contextlib.ExitStack() as stack:
            # Every receiver is up (and idle) throughout, and each corpus/associations/sender cell
            # runs them one after the other: on a shared machine the load changes from one quarter
            # of an hour to the next, so the runs compared with each other are minutes apart at most.
            up = {name: stack.enter_context(receivers[name]()) for name in wanted}
            for corpus in args.corpora or ("small", "large"):
                info = corpora[corpus]
                if not info["files"]:
                    continue
                for assoc in args.assoc or (1, 4):
                    for sender in args.sender or ("nodelay", "stock"):
                        for _round in range(
                            args.rounds
                        ):  # receivers alternate: each round sees the same disk
                            for name, receiver in up.items():
                                if assoc in serves[name]:
                                    rows.append(
                                        run_cell(
                                            receiver,
                                            name.split("+")[0],
                                            info,
                                            corpus,
                                            assoc,
                                            sender,
                                            args,
                                            worker,
                                            workdir,
                                        )
                                    )
        if args.diagnose and corpora["small"]["files"]:
            print("diagnosis (running our listener in this process, instrumented)...", flush=True)
            with Vetpacs(
                workdir, 1, env, db, warmup, queue
            ):  # make sure the worker and database are up and clean
                pass
            diagnosis = diagnose(
                env,
                corpora["small"]["root"],
                corpora["small"]["files"],
                db,
                args.run_timeout,
                large_files=corpus_files(corpora["large"]["root"]),
            )
        if not orthanc:
            print(
                f"note: Orthanc is not installed ({ORTHANC}; `apt-get install orthanc`): not measured,"
                " see the issue's reference figures below"
            )
    finally:
        if rows:
            print()
            print(
                f"DICOM ingest, {os.cpu_count()} CPUs, storescu -> receiver on {HOST}; "
                "img/s and MB/s until storescu exits (C-STORE end); idx = until every instance is indexed"
            )
            print(table(rows))
            print(
                "nodelay: sender with TCP_NODELAY=1 (Nagle off); stock: TCP_NODELAY unset (Nagle on)."
                " storescp writes"
                " files without fsync; VetPACS fsyncs each object and its folder. CPU% = receiver"
                " process tree"
                " (listener or storescp) CPU time / C-STORE time, Celery worker tree CPU time / time"
                " until indexed (100% = one core);"
                f" host% = all {os.cpu_count()} CPUs busy over the run (PostgreSQL, Redis, storescu"
                " included)."
            )
            if any(r["receiver"] == "orthanc" for r in rows):
                print(targets(rows))
            else:
                print(REFERENCE)
            if any(r["receiver"].endswith("-plain") for r in rows):
                print(fast_vs_plain(rows))
        if diagnosis:
            print("\nWhere the time goes (small corpus):")
            print(diagnosis)
        harness.stop_all()
        keep_logs = bool(os.environ.get("BENCH_KEEP_LOGS"))
        if keep_logs:
            shutil.rmtree(storage_root, ignore_errors=True)
            print(f"logs kept in {workdir}")
        harness.cleanup([db], None if keep_logs else workdir)
        if _redis is not None:
            _redis.delete(queue)
        print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
