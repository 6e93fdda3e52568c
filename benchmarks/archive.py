"""The archive's read side (issue 15): VetPACS against Orthanc 1.10 with its DICOMweb plugin.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python benchmarks/archive.py \
        [--studies 10000] [--instances N] [--big 500] [--queries 100] [--rounds 3] [--only orthanc|vetpacs]
        [--corpus DIR] [--keep]

Builds a clinic's archive (benchmarks/archive_corpus.py: ``--studies`` studies holding
``--instances`` instances, 10 a study by default, small synthetic images and one CT series of
``--big`` 512x512 16-bit slices; the files are kept under ``--corpus`` and reused), loads it into
both servers the way a clinic's modalities would, with dcmtk's storescu over four associations,
and measures how long that takes; then, the two servers taking turns with the same requests
from the same clients:

- C-FIND study search, Study Root, with a patient name wildcard, a date range and a modality
  (pynetdicom over one open association; p50 and p95 of the time to the final response);
- C-MOVE of the big CT series to dcmtk's storescp (movescu) and C-GET of it (getscu): images/s;
- QIDO-RS study search with the same keys (one keep-alive HTTP connection): p50 and p95;
- WADO-RS: the big series' ``/metadata`` (time), its retrieve (MB/s), ``/frames/1`` of each of
  its instances from four connections as a viewer loads them (frames/s), ``/rendered`` of some
  of them (p50).

It prints each figure, the ratio to Orthanc's and the issue's target as met or not met (never
asserted), and whether both answered each search with the same studies.

VetPACS runs as ``make run`` runs it, its web process under gunicorn as in production: gunicorn
(2 gthread workers x 4 threads), ``manage.py dicom_listener`` and a Celery worker (``--beat``,
concurrency 2), on a throw-away PostgreSQL database (next to DATABASE_URL's, else on
postgres@127.0.0.1:5432) whose animals are the corpus's registered ones, so that ingest links
their studies by Patient ID as it would in a clinic. The benchmark's AE titles are registered
nodes (the client may query and retrieve; the storescp is a move destination); the DICOMweb
requests carry an API key with ``studies:read``. Orthanc runs as tests/orthanc.py starts it:
packaged defaults, SQLite index, its DICOMweb plugin, the client and the storescp in its
DicomModalities. Both have Nagle's algorithm off (dcmtk reads TCP_NODELAY), as have the clients.

A service VetPACS does not offer yet is reported as not measured, with the reason; ``--only
orthanc`` measures Orthanc alone (no database needed). ``--keep`` keeps the database and the
work dir (Orthanc's storage, VetPACS's storage, the logs).
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.archive_corpus import corpus_build, instance_uid, plan_make  # noqa: E402
from benchmarks.harness import HOST, PYTHON, free_port, med, percentile, port_open, tail  # noqa: E402
from benchmarks.ingest import STORESCP, STORESCU, storescu_args  # noqa: E402
from benchmarks.worklist import _responses_for_caller_only  # noqa: E402
from tests.orthanc import DICOMWEB_PLUGIN, ORTHANC, Orthanc  # noqa: E402

MOVESCU, GETSCU = "/usr/bin/movescu", "/usr/bin/getscu"  # .venv/bin has pynetdicom's namesakes
CLIENT_AE = "BENCHSCU"  # queries, retrieves and stores (storescu_args calls itself this too)
DEST_AE = "BENCHSCP"  # the storescp C-MOVE sends to
OUR_AE, ORTHANC_AE = "VETPACS", "ORTHANC"
PDU = "131072"  # the receivers' maximum PDU (storescp, getscu), the same for both servers
FIND_KEYS = [  # what a workstation's study list asks for (Horos, Weasis)
    "StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "AccessionNumber", "StudyID", "StudyDescription", "ReferringPhysicianName", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
]  # fmt: skip
NODELAY = {**os.environ, "TCP_NODELAY": "1"}


class Missing(Exception):
    """A service the server does not offer (yet): the figure is not measured, for this reason."""


# --- the servers ---------------------------------------------------------------------------------


class Server:
    """What the measurements need of either server: DICOM port and AE title, DICOMweb root."""

    def __init__(self, label, port, aet, web_port, web_root, headers):
        self.label, self.port, self.aet = label, port, aet
        self.web_port, self.web_root, self.headers = web_port, web_root, headers


def vetpacs_start(workdir, env, listener_processes):
    """gunicorn, the DICOM listener and a Celery worker, as the Procfile runs them."""
    port = free_port()
    log = workdir / "listener.log"
    harness.launch(
        [PYTHON, "manage.py", "dicom_listener", "--bind", HOST, "--port", str(port), "--ae-title", OUR_AE,
         "--processes", str(listener_processes)],
        env=env, log=log, what="the DICOM listener",
        ready=lambda: f"DICOM listener {OUR_AE} on" in log.read_text(),
    )  # fmt: skip
    worker = harness.start(
        [PYTHON, "-m", "celery", "-A", "vetclinic", "worker", "--beat", "--loglevel", "WARNING",
         "--concurrency", "2", "-Q", env["CELERY_QUEUE"], "-n", f"{env['CELERY_QUEUE']}@%h"],
        env=env, log=workdir / "worker.log",
    )  # fmt: skip
    web = harness.Gunicorn("vetclinic.wsgi:application", workdir, env, workers=2, threads=4).__enter__()
    return port, web, worker


def vetpacs_fill(plan):
    """The corpus's registered animals and their owners, by bulk insert; their search words and
    DICOM name keys by patients/search.py."""
    from django.core.management.color import no_style
    from django.db import connection, transaction

    from patients.models import Owner, Ownership, Patient, Species
    from patients.search import search_terms_refresh

    species = {row.meaning: row for row in Species.objects.all()}
    owners, patients, ownerships = [], [], []
    for animal in plan["animals"]:
        pk = animal["pk"]
        owners.append(Owner(pk=pk, family_name=animal["family"], given_name=animal["given"]))
        born = animal["birth"]
        patients.append(
            Patient(
                pk=pk,
                patient_id=animal["patient_id"],
                name=animal["name"],
                species=species[animal["species_meaning"]],
                sex=animal["sex"],
                birth_date=f"{born[:4]}-{born[4:6]}-{born[6:]}",
            )
        )
        ownerships.append(Ownership(patient_id=pk, owner_id=pk, is_primary=True))
    with transaction.atomic():
        Owner.objects.bulk_create(owners, batch_size=5000)
        Patient.objects.bulk_create(patients, batch_size=5000)
        Ownership.objects.bulk_create(ownerships, batch_size=5000)
        for start in range(0, len(patients), 2000):
            search_terms_refresh(patients=patients[start : start + 2000], owners=owners[start : start + 2000])
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Owner, Patient]):
                cursor.execute(sql)


def vetpacs_nodes(scp_port):
    """The benchmark's DICOM nodes (the client may store, query and retrieve; the storescp on
    ``scp_port`` is a move destination) and a new API client with ``studies:read``; its key."""
    from imaging.models import Modality
    from integrations.api.clients import api_client_create
    from vetclinic.audit.services import Actor

    Modality.objects.update_or_create(
        ae_title=CLIENT_AE,
        defaults=dict(host=HOST, modality_type="OT", station_name="BENCH", may_store=True, may_query=True,
                      may_retrieve=True),
    )  # fmt: skip
    Modality.objects.update_or_create(
        ae_title=DEST_AE,
        defaults=dict(host=HOST, port=scp_port, modality_type="OT", station_name="BENCHSCP", may_store=False,
                      may_query=False, move_destination=True),
    )  # fmt: skip
    name = f"Bench viewer {uuid.uuid4().hex[:8]}"
    _, key = api_client_create(
        actor=Actor.system("benchmark"), name=name, scopes=["studies:read"], rate_limit=10_000_000
    )
    return key


def vetpacs_indexed():
    from imaging.models import Instance

    return Instance.objects.count()


def vetpacs_thumbnails_pending():
    from imaging.models import Series

    return Series.objects.filter(thumbnail_key="").count()


def vetpacs_metadata_pending():
    """Instances whose /metadata document the worker has not kept yet (imaging.tasks.metadata_keep,
    queued after indexing): /metadata would compute them when read."""
    from imaging.models import Instance

    return Instance.objects.filter(metadata=None).count()


def vetpacs_linked():
    from imaging.models import Study

    return Study.objects.exclude(patient=None).count(), Study.objects.count()


# --- loading ---------------------------------------------------------------------------------------


def load(port, called, parts, expected, stored, *, timeout):
    """storescu, one association per folder, all at once; seconds until every storescu has
    exited and until ``stored()`` reaches ``expected`` (polled every second)."""
    t0 = time.perf_counter()
    senders = [
        subprocess.Popen(storescu_args(port, [part], called), env=NODELAY, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
        for part in parts
    ]  # fmt: skip
    outputs = [proc.communicate(timeout=timeout)[0].decode(errors="replace") for proc in senders]
    sent = time.perf_counter() - t0
    failed = [out[-500:] for proc, out in zip(senders, outputs, strict=True) if proc.returncode]
    progress(
        stored, lambda n: n >= expected, what=f"{expected} instances in {called}", said=" | ".join(failed)
    )
    return sent, time.perf_counter() - t0, failed


def ingest_direct(parts, expected, processes=2):
    """The ingest path without the network: every file received as a C-STORE's data set is
    (receive.instance_receive: checked, stored durably) and indexed in batches of 50
    (index.instances_index, as the worker's task does), in ``processes`` processes; series
    thumbnails are still queued to the worker. Returns the seconds it took."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # each process opens its own
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        done = sum(pool.map(_ingest_folder, [str(part) for part in parts]))
    if done != expected:
        raise RuntimeError(f"the direct ingest indexed {done}/{expected} instances")
    return time.perf_counter() - t0


def _ingest_folder(folder):
    from django.db import connections
    from pydicom.filereader import read_file_meta_info

    from imaging.ingest import index, receive

    class Batch:  # an association's IngestBatch, indexed here instead of queued
        def __init__(self):
            self.messages = []

        def add(self, message):
            self.messages.append(message)

    batch, done = Batch(), 0
    try:
        for path in sorted(Path(folder).rglob("*.dcm")):
            meta = read_file_meta_info(path)
            receive.instance_receive(
                source=str(path), transfer_syntax=meta.TransferSyntaxUID, calling_ae=CLIENT_AE, batch=batch,
                sop_class_uid=meta.MediaStorageSOPClassUID, sop_instance_uid=meta.MediaStorageSOPInstanceUID,
            )  # fmt: skip
            if len(batch.messages) >= 50:
                done += len(index.instances_index(messages=batch.messages))
                batch.messages = []
        if batch.messages:
            done += len(index.instances_index(messages=batch.messages))
    finally:
        connections.close_all()
    return done


def progress(value, done, *, what, stall=120.0, said=""):
    """Poll ``value()`` each second until ``done(value)``; raise once it has not changed for
    ``stall`` seconds (a load that lost instances, a thumbnail that never comes)."""
    current, moved = value(), time.perf_counter()
    while not done(current):
        if time.perf_counter() - moved > stall:
            raise TimeoutError(f"waiting for {what}: stuck at {current} for {stall:.0f} s {said}".rstrip())
        time.sleep(1.0)
        current, before = value(), current
        moved = time.perf_counter() if current != before else moved
    return current


# --- C-FIND -----------------------------------------------------------------------------------------


def queries_make(plan, n, rng):
    """(name pattern, date range, modality, the study it was made from): a family name's first
    four letters and *, a window of 1-4 months around one of the family's studies, its modality."""
    from datetime import date, timedelta

    studies = [s for s in plan["studies"] if s["animal"]["family"].isascii() and not s.get("big")]
    out = []
    for study in rng.sample(studies, min(n, len(studies))):
        day = date(int(study["date"][:4]), int(study["date"][4:6]), int(study["date"][6:]))
        low = day - timedelta(days=rng.randint(0, 60))
        high = day + timedelta(days=rng.randint(0, 60))
        dates = f"{low:%Y%m%d}-{high:%Y%m%d}"
        out.append((study["animal"]["family"][:4] + "*", dates, study["modality"], study["uid"]))
    return out


def find_identifier(query):
    from pydicom.dataset import Dataset

    name, dates, modality, _ = query
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in FIND_KEYS:
        setattr(ds, keyword, "")
    ds.PatientName, ds.StudyDate, ds.ModalitiesInStudy = name, dates, modality
    return ds


def cfind(server, queries):
    """The queries over one pynetdicom association: ms per C-FIND, the studies each found."""
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    ae = AE(ae_title=CLIENT_AE)
    ae.add_requested_context(FIND)
    ae.dimse_timeout = ae.acse_timeout = 60
    assoc = ae.associate(HOST, server.port, ae_title=server.aet)
    try:
        if not assoc.is_established:
            raise Missing(f"{server.label} refused the association: no C-FIND SCP for Study Root FIND?")
        if not any(c.abstract_syntax == FIND for c in assoc.accepted_contexts):
            raise Missing(f"{server.label} does not accept Study Root Query/Retrieve - FIND: no C-FIND SCP")
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assoc.dimse.get_msg = _responses_for_caller_only(assoc)
        times, found = [], []
        for query in queries:
            uids, final = set(), None
            t0 = time.perf_counter()
            for status, answer in assoc.send_c_find(find_identifier(query), FIND):
                code = getattr(status, "Status", None)
                if code in (0xFF00, 0xFF01):
                    uids.add(str(answer.StudyInstanceUID))
                else:
                    final = code
            times.append(1000 * (time.perf_counter() - t0))
            if final != 0x0000:
                raise Missing(f"{server.label}: C-FIND ended with status {final!r}")
            found.append(uids)
        return {"times": times, "found": found}
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


# --- C-MOVE, C-GET ----------------------------------------------------------------------------------


def retrieve_keys(series, study_uid):
    return ["-S", "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study_uid}",
            "-k", f"SeriesInstanceUID={series['uid']}"]  # fmt: skip


def cmove(server, big, scp_dir):
    """movescu asks for the big series to go to the storescp: seconds until it ends, and how
    many files the storescp wrote."""
    _empty(scp_dir)
    series = big["series"][0]
    args = [MOVESCU, "-aet", CLIENT_AE, "-aec", server.aet, "-aem", DEST_AE, "-ll", "warn",
            *retrieve_keys(series, big["uid"]), HOST, str(server.port)]  # fmt: skip
    return _retrieve(server, args, scp_dir, series["count"], "C-MOVE")


def cget(server, big, out_dir):
    """getscu fetches the big series on its own association: seconds, files written."""
    _empty(out_dir)
    series = big["series"][0]
    args = [GETSCU, "-aet", CLIENT_AE, "-aec", server.aet, "-pdu", PDU, "-od", str(out_dir), "-ll", "warn",
            *retrieve_keys(series, big["uid"]), HOST, str(server.port)]  # fmt: skip
    return _retrieve(server, args, out_dir, series["count"], "C-GET")


def _retrieve(server, args, folder, expected, what):
    t0 = time.perf_counter()
    done = subprocess.run(args, env=NODELAY, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    files = sum(1 for p in folder.iterdir() if p.is_file())
    if files < expected:
        output = (done.stdout + done.stderr).strip()[-600:]
        raise Missing(
            f"{server.label}: {what} gave {files}/{expected} images (exit {done.returncode}): {output}"
        )
    return {"seconds": seconds, "images": files, "bytes": sum(p.stat().st_size for p in folder.iterdir())}


def _empty(folder):
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


# --- DICOMweb ---------------------------------------------------------------------------------------


class Web:
    """One keep-alive HTTP connection to a server's DICOMweb root, Nagle off."""

    def __init__(self, server):
        self.server = server
        self.conn = None

    def get(self, path, accept, *, sink=False):
        """(status, body or its length when ``sink``, seconds until the last byte)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.server.web_port, timeout=600)
            self.conn.connect()
            self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = {"Accept": accept, **self.server.headers}
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", self.server.web_root + path, headers=headers)
            response = self.conn.getresponse()
            if sink:
                body = 0
                while chunk := response.read(1 << 20):
                    body += len(chunk)
            else:
                body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        return response.status, body, time.perf_counter() - t0

    def checked(self, path, accept, what, *, sink=False, ok=(200,)):
        status, body, seconds = self.get(path, accept, sink=sink)
        if status not in ok:
            text = "" if sink else body[:300].decode(errors="replace")
            raise Missing(
                f"{self.server.label}: {what} {self.server.web_root}{path[:80]} answered {status} {text}"
            )
        return body, seconds

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def qido(server, queries):
    web, times, found = Web(server), [], []
    try:
        for name, dates, modality, _ in queries:
            # "*" and "'" as they are: both are allowed in a query (RFC 3986), and Orthanc's plugin
            # takes %2A for a star, not a wildcard.
            pattern = quote(name, safe="*'")
            path = f"/studies?PatientName={pattern}&StudyDate={dates}&ModalitiesInStudy={modality}"
            body, seconds = web.checked(path, "application/dicom+json", "QIDO-RS", ok=(200, 204))
            times.append(1000 * seconds)
            found.append({study["0020000D"]["Value"][0] for study in json.loads(body or b"[]")})
    finally:
        web.close()
    return {"times": times, "found": found}


def series_path(big):
    return f"/studies/{big['uid']}/series/{big['series'][0]['uid']}"


def wado_metadata(server, big):
    web = Web(server)
    try:
        body, seconds = web.checked(
            series_path(big) + "/metadata", "application/dicom+json", "WADO-RS metadata"
        )
    finally:
        web.close()
    return {"seconds": seconds, "instances": len(json.loads(body)), "bytes": len(body)}


def wado_series(server, big):
    web = Web(server)
    accept = 'multipart/related; type="application/dicom"'
    try:
        size, seconds = web.checked(series_path(big), accept, "WADO-RS series retrieve", sink=True)
    finally:
        web.close()
    if size < pixel_bytes(big):
        raise Missing(f"{server.label}: the series retrieve gave {size} bytes, less than its pixel data")
    return {"seconds": seconds, "bytes": size}


def pixel_bytes(big):
    """The big series' pixel data: 512x512, 2 bytes a pixel, each slice."""
    return big["series"][0]["count"] * 512 * 512 * 2


def wado_frames(server, big, connections=4):
    """/frames/1 of every instance of the big series, shared by ``connections`` threads."""
    series = big["series"][0]
    paths = [
        f"{series_path(big)}/instances/{instance_uid(series, n)}/frames/1"
        for n in range(1, series["count"] + 1)
    ]
    accept = 'multipart/related; type="application/octet-stream"'
    errors, sizes = [], []

    def fetch(mine):
        web = Web(server)
        try:
            for path in mine:
                size, _ = web.checked(path, accept, "WADO-RS frames", sink=True)
                sizes.append(size)
        except Exception as error:  # noqa: BLE001  (reported by the caller)
            errors.append(error)
        finally:
            web.close()

    threads = [threading.Thread(target=fetch, args=(paths[n::connections],)) for n in range(connections)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0] if isinstance(errors[0], Missing) else Missing(f"{server.label}: frames: {errors[0]}")
    if sum(sizes) < pixel_bytes(big):
        raise Missing(f"{server.label}: the frames came to {sum(sizes)} bytes, less than the pixel data")
    return {"seconds": seconds, "frames": len(sizes), "bytes": sum(sizes)}


def wado_rendered(server, big, n):
    series = big["series"][0]
    step = max(1, series["count"] // n)
    web, times = Web(server), []
    try:
        for number in range(1, series["count"] + 1, step):
            path = f"{series_path(big)}/instances/{instance_uid(series, number)}/rendered"
            body, seconds = web.checked(path, "image/jpeg", "WADO-RS rendered")
            if body[:2] != b"\xff\xd8":
                raise Missing(f"{server.label}: /rendered did not answer a JPEG ({body[:20]!r})")
            times.append(1000 * seconds)
    finally:
        web.close()
    return {"times": times}


# --- measuring ---------------------------------------------------------------------------------------


def measure(servers, name, run, rounds, results, say=True):
    """``run(server)`` ``rounds`` times for each server, the servers taking turns (the order
    turning round); results[name][label] is the list of results, or the Missing reason."""
    cell = results.setdefault(name, {})
    for round_ in range(rounds):
        turn = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
        for server in turn:
            if isinstance(cell.get(server.label), str):
                continue  # missing: said once
            try:
                cell.setdefault(server.label, []).append(run(server))
            except Missing as reason:
                cell[server.label] = str(reason)
            except Exception as error:  # a client or server failure, said as one
                cell[server.label] = f"{server.label}: {type(error).__name__}: {error}"
    if say:
        line = "; ".join(
            f"{label} {'not measured' if isinstance(v, str) else f'{len(v)} runs'}"
            for label, v in cell.items()
        )
        print(f"  {name}: {line}", flush=True)


def report(results, big, queries):
    """The figures, the ratios and the targets."""
    rows, targets, notes = [], [], []
    series = big["series"][0]

    def figure(name, label, value):
        runs = results.get(name, {}).get(label)
        if runs is None:
            return None, "not run"
        if isinstance(runs, str):
            return None, runs
        return value(runs), ""

    def p50(runs):
        return med([t for run in runs for t in run["times"]])

    def p95(runs):
        return percentile([t for run in runs for t in run["times"]], 0.95)

    lines = [
        # (name, what, unit, value, better, goal ratio, goal text)
        ("cfind", "C-FIND study search p50", "ms", p50, "lower", 0.5, "<= 0.5x Orthanc's"),
        ("cmove", f"C-MOVE of {series['count']} CT images to storescp", "img/s",
         lambda runs: med([r["images"] / r["seconds"] for r in runs]), "higher", 1.0, ">= Orthanc's"),
        ("cget", f"C-GET of {series['count']} CT images (getscu)", "img/s",
         lambda runs: med([r["images"] / r["seconds"] for r in runs]), "higher", 1.0, ">= Orthanc's"),
        ("qido", "QIDO-RS study search p50", "ms", p50, "lower", 0.5, "<= 0.5x Orthanc's"),
        ("metadata", f"WADO-RS /metadata of the {series['count']}-instance series", "ms",
         lambda runs: med([1000 * r["seconds"] for r in runs]), "lower", 0.25, "<= 0.25x Orthanc's time"),
        ("series", "WADO-RS series retrieve", "MB/s",
         lambda runs: med([r["bytes"] / 1e6 / r["seconds"] for r in runs]), "higher", 1.0, ">= Orthanc's"),
        ("frames", "WADO-RS /frames, 4 connections", "frames/s",
         lambda runs: med([r["frames"] / r["seconds"] for r in runs]), "higher", 1.0, ">= Orthanc's"),
        ("rendered", "WADO-RS /rendered p50", "ms", p50, "lower", 1.0, "<= Orthanc's"),
    ]  # fmt: skip
    for name, what, unit, value, better, goal, goal_text in lines:
        theirs, why_theirs = figure(name, "Orthanc", value)
        ours, why_ours = figure(name, "VetPACS", value)
        ratio = ours / theirs if ours and theirs else None
        extra = ""
        if unit == "ms" and name in ("cfind", "qido", "rendered"):
            extra = " / ".join(
                harness.fmt(figure(name, label, p95)[0], ".1f") for label in ("Orthanc", "VetPACS")
            )
        rows.append([what, unit, harness.fmt(theirs, ".1f"), harness.fmt(ours, ".1f"),
                     harness.fmt(ratio, ".2f") + ("x" if ratio else ""), extra])  # fmt: skip
        if ratio is None:
            reason = why_ours or why_theirs or "no figure"
            targets.append(f"  {what}: not measured ({reason[:300]}); target {goal_text}")
        else:
            met = ratio <= goal if better == "lower" else ratio >= goal
            figure_text = f"VetPACS {ours:.1f} {unit}, Orthanc {theirs:.1f} {unit}: {ratio:.2f}x"
            targets.append(harness.target(what, figure_text, goal_text, met))
    for name in ("cfind", "qido"):
        cell = results.get(name, {})
        runs = {label: v for label, v in cell.items() if not isinstance(v, str)}
        for label, found in runs.items():
            hits = [uid in answer for (_, _, _, uid), answer in zip(queries, found[0]["found"], strict=False)]
            matches = med([len(answer) for answer in found[0]["found"]])
            notes.append(
                f"  {name}: {label} found each query's own study in {sum(hits)}/{len(hits)} queries,"
                f" median {matches:g} studies a query"
            )
        if len(runs) == 2:
            a, b = (runs[label][0]["found"] for label in ("Orthanc", "VetPACS"))
            same = sum(x == y for x, y in zip(a, b, strict=False))
            notes.append(f"  {name}: both answered the same studies in {same}/{len(a)} queries")
    print(
        harness.table(
            ["figure", "unit", "Orthanc", "VetPACS", "VetPACS/Orthanc", "p95 Orthanc / VetPACS"], rows
        )
    )
    print("\n".join(notes))
    print("Targets (issue 15), VetPACS against Orthanc 1.10 + DICOMweb plugin 1.7 measured in this run:")
    print("\n".join(targets))


# --- main ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=10_000, help="studies in the archive (default 10000)")
    parser.add_argument("--instances", type=int, help="instances in all (default 10 a study)")
    parser.add_argument("--big", type=int, default=500, help="slices of the 512x512 CT series (default 500)")
    parser.add_argument("--queries", type=int, default=100, help="C-FIND and QIDO-RS searches (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each retrieve per server (default 3)")
    parser.add_argument("--rendered", type=int, default=30, help="/rendered requests a round (default 30)")
    parser.add_argument("--only", choices=["orthanc", "vetpacs"], help="measure one server alone")
    parser.add_argument(
        "--listener-processes",
        type=int,
        default=1,
        help="dicom_listener --processes (default 1, as make run)",
    )
    parser.add_argument(
        "--vetpacs-load",
        choices=["c-store", "direct"],
        default="c-store",
        help="load VetPACS by C-STORE (storescu, 4 associations) or through the ingest services in"
        " 2 processes, without the network and Celery (default c-store)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--corpus", type=Path, default=Path(tempfile.gettempdir()) / "vetpacs-bench-archive-corpus"
    )
    parser.add_argument(
        "--load-timeout", type=float, default=3600, help="seconds loading may take per server"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the work dir")
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="WORKDIR",
        help="measure what a --keep run loaded (its work dir and database), without loading",
    )
    args = parser.parse_args()
    instances = args.instances or 10 * args.studies
    if instances < args.studies + args.big:
        parser.error("--instances: at least one a study plus the big series")
    tools = [STORESCU, STORESCP, MOVESCU, GETSCU] + (
        [ORTHANC, DICOMWEB_PLUGIN] if args.only != "vetpacs" else []
    )
    for tool in tools:
        if not os.path.exists(tool):
            raise SystemExit(
                f"{tool} not found: `make system-tools` installs dcmtk, orthanc and orthanc-dicomweb"
            )
    import random

    began = time.perf_counter()
    plan = plan_make(args.studies, instances, args.big, args.seed)
    big = plan["big"]
    expected = sum(s["count"] for study in plan["studies"] for s in study["series"])
    t0 = time.perf_counter()
    shape = {"studies": args.studies, "instances": instances, "big": args.big, "seed": args.seed}
    built, parts = corpus_build(args.corpus, plan, shape)
    size = sum(p.stat().st_size for part in parts for p in part.rglob("*.dcm"))
    print(
        f"corpus {args.corpus} ({'built in' if built else 'reused, checked in'} {time.perf_counter() - t0:.0f} s):"
        f" {len(plan['studies']):,} studies, {expected:,} instances, {size / 1e9:.2f} GB, of {len(plan['animals']):,}"
        f" registered animals; big series {big['series'][0]['count']} x 512x512 16-bit;"
        f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    queries = queries_make(plan, args.queries, random.Random(args.seed + 1))
    state = None
    if args.reuse:  # what a --keep run loaded: measured again without loading
        workdir = args.reuse
        state = json.loads((workdir / "state.json").read_text())
        if state["shape"] != shape:
            raise SystemExit(f"{workdir} holds {state['shape']}, not {shape}: give the same options")
    else:
        workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-archive-"))
        state = {"shape": shape, "servers": [], "db": None}
    db, servers, results, loading = None, [], {}, []
    scp_port, scp_dir, get_dir = free_port(), workdir / "storescp", workdir / "getscu"
    scp_dir.mkdir(exist_ok=True)
    try:
        harness.launch(
            [STORESCP, "--output-directory", str(scp_dir), "-aet", DEST_AE, "-pdu", PDU, "-dhl", str(scp_port)],
            env=NODELAY, log=workdir / "storescp.log", ready=lambda: port_open(scp_port), what="storescp",
        )  # fmt: skip
        if args.only != "vetpacs":
            orthanc = Orthanc(
                workdir, aet=ORTHANC_AE, env=NODELAY,
                peers={"bench-scu": (CLIENT_AE, HOST, 104), "bench-scp": (DEST_AE, HOST, scp_port)},
            ).start()  # fmt: skip
            harness.STARTED.append(orthanc.proc)
            print(f"Orthanc on DICOM {orthanc.dicom_port}, HTTP {orthanc.http_port}", flush=True)
            if args.reuse:
                reused("Orthanc", state, orthanc.count(), expected)
            else:
                sent, stored, failed = load(
                    orthanc.dicom_port, ORTHANC_AE, parts, expected, orthanc.count, timeout=args.load_timeout
                )
                loading.append(("Orthanc (indexed before it answers)", sent, stored, failed))
                state["servers"].append("Orthanc")
                print(
                    f"  Orthanc: {expected:,} instances in {stored:.0f} s ({expected / stored:.0f}/s)",
                    flush=True,
                )
            servers.append(
                Server("Orthanc", orthanc.dicom_port, ORTHANC_AE, orthanc.http_port, "/dicom-web", {})
            )
        if args.only != "orthanc":
            db = harness.Database(
                harness.postgres_url(), "archive", reuse=state["db"] if args.reuse else None
            )
            env = {
                **os.environ, "DATABASE_URL": db.url, "DEBUG": "false", "SECRET_KEY": uuid.uuid4().hex * 2,
                "LOG_LEVEL": "INFO", "VAR_DIR": str(workdir / "var"), "STORAGE_ROOT": str(workdir / "storage"),
                "STORAGE_BACKEND": "file", "ALLOWED_HOSTS": HOST, "SECURE_SSL_REDIRECT": "false",
                "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "CELERY_QUEUE": f"bench-{uuid.uuid4().hex[:10]}",
                "DICOM_AE_TITLE": OUR_AE, "DICOM_ALLOW_ANY_AE": "false", "PATIENT_ID_PREFIX": "P",
                "DATABASE_CONN_MAX_AGE": "60", "TCP_NODELAY": "1",
            }  # fmt: skip
            os.environ.update(env)
            import django

            django.setup()
            from django.core.management import call_command
            from django.db import connections

            call_command("migrate", verbosity=0, interactive=False)
            if not args.reuse:
                vetpacs_fill(plan)
            key = vetpacs_nodes(scp_port)
            connections.close_all()
            port, web, worker = vetpacs_start(workdir, env, args.listener_processes)
            print(f"VetPACS ({db}) on DICOM {port}, HTTP {web.port}", flush=True)
            if args.reuse:
                reused("VetPACS", state, vetpacs_indexed(), expected)
            elif args.vetpacs_load == "c-store":
                sent, stored, failed = load(
                    port, OUR_AE, parts, expected, vetpacs_indexed, timeout=args.load_timeout
                )
            else:
                sent, failed = None, []
                stored = ingest_direct(parts, expected)
            if not args.reuse:
                t1 = time.perf_counter()
                try:
                    progress(vetpacs_thumbnails_pending, lambda n: n == 0, what="series thumbnails", stall=60)
                    progress(vetpacs_metadata_pending, lambda n: n == 0, what="metadata documents", stall=60)
                except TimeoutError as error:
                    print(f"  note: {error}", flush=True)
                settled = stored + time.perf_counter() - t1
                linked, studies = vetpacs_linked()
                loading.append(
                    (
                        f"VetPACS (until indexed; thumbnails and metadata done at {settled:.0f} s)",
                        sent,
                        stored,
                        failed,
                    )
                )
                state["servers"].append("VetPACS")
                state["db"] = db.name
                print(
                    f"  VetPACS: {expected:,} instances indexed in {stored:.0f} s ({expected / stored:.0f}/s);"
                    f" {linked:,} of {studies:,} studies linked to their animal; thumbnails and metadata done at {settled:.0f} s",
                    flush=True,
                )
            if worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited: {tail(workdir / 'worker.log')}")
            servers.append(
                Server("VetPACS", port, OUR_AE, web.port, "/dicomweb", {"Authorization": f"Bearer {key}"})
            )
        (workdir / "state.json").write_text(json.dumps(state))
        print("measuring, the servers taking turns:", flush=True)
        warm = queries[: min(5, len(queries))]
        measure(servers, "warm-up", lambda s: (cfind(s, warm), qido(s, warm)), 1, {})  # untimed
        blocks = [queries[i : i + 10] for i in range(0, len(queries), 10)]
        for name, run in (("cfind", cfind), ("qido", qido)):
            by_block = {}
            for block in blocks:
                measure(servers, name, lambda s, block=block, run=run: run(s, block), 1, by_block, say=False)
            results[name] = _joined(by_block[name])
            print(f"  {name}: {len(queries)} searches, in blocks of 10", flush=True)
        measure(servers, "cmove", lambda s: cmove(s, big, scp_dir), args.rounds, results)
        measure(servers, "cget", lambda s: cget(s, big, get_dir), args.rounds, results)
        measure(servers, "metadata-warm-up", lambda s: wado_metadata(s, big), 1, {})
        measure(servers, "metadata", lambda s: wado_metadata(s, big), args.rounds + 2, results)
        measure(servers, "series", lambda s: wado_series(s, big), args.rounds, results)
        measure(servers, "frames", lambda s: wado_frames(s, big), args.rounds, results)
        measure(servers, "rendered", lambda s: wado_rendered(s, big, args.rendered), args.rounds, results)
    finally:
        print()
        for what, sent, stored, failed in loading:
            how = (
                f"storescu, {len(parts)} associations: C-STORE done in {sent:.0f} s ({expected / sent:.0f} img/s,"
                f" {size / 1e6 / sent:.1f} MB/s)"
                if sent
                else "the ingest services directly, 2 processes"
            )
            print(
                f"Loading {what}: {how}, stored {stored:.0f} s ({expected / stored:.0f} img/s)"
                f"{'; storescu errors: ' + ' | '.join(failed) if failed else ''}"
            )
        if results:
            print(
                f"\nThe archive's read side, {len(plan['studies']):,} studies / {expected:,} instances, {os.cpu_count()}"
                f" CPUs; {len(queries)} searches (C-FIND over one pynetdicom association, QIDO-RS over one"
                f" keep-alive connection), {args.rounds} rounds of each retrieve per server, medians:"
            )
            report(results, big, queries)
        harness.stop_all()
        harness.cleanup([db], workdir, keep=args.keep or bool(args.reuse))
        if args.keep and not args.reuse:
            print(f"measure them again without loading: --reuse {workdir} (and the same archive options)")
        print(f"total {time.perf_counter() - began:.0f} s")


def reused(label, state, count, expected):
    if label not in state["servers"] or count != expected:
        raise SystemExit(f"--reuse: {label} was not loaded in that run ({count}/{expected} instances)")
    print(f"  {label}: {count:,} instances, loaded by an earlier run", flush=True)


def _joined(cell):
    """Blocks' results joined into one run per server (or the first Missing reason)."""
    out = {}
    for label, runs in cell.items():
        if isinstance(runs, str):
            out[label] = runs
        else:
            out[label] = [
                {
                    "times": [t for r in runs for t in r["times"]],
                    "found": [f for r in runs for f in r["found"]],
                }
            ]
    return out


if __name__ == "__main__":
    main()
