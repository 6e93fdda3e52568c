import os
import signal
import socket
import subprocess
import sys
import time
import types
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, connections
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations

from patients.models import Breed, Species
from patients.services import owner_upsert, patient_upsert
from vetclinic.audit.services import Actor

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


# A transactional test's database is emptied after it by Django's flush, which on PostgreSQL
# TRUNCATEs every table: ~1.5 s a test here, a new file for each of 60-odd tables. A DELETE of
# each in one transaction takes milliseconds for a test's few rows; Django's foreign keys are
# DEFERRABLE INITIALLY DEFERRED, so the order does not matter and they are checked, against
# empty tables, at the commit. (With reset_sequences, Django's own statement.)
def _flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    if reset_sequences:
        return _truncate(self, style, tables, reset_sequences=True, allow_cascade=allow_cascade)
    return [
        f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};" for table in tables
    ]


_truncate = PostgresOperations.sql_flush
PostgresOperations.sql_flush = _flush_by_delete

# Every query compiled once (vetclinic/db.py) is checked against its plain Django queryset on
# each call, in this process and in those the tests start (process_env passes os.environ on):
# a compiled statement that gives other rows fails the test that reached it. A run may still ask
# for true or false.
if not os.environ.get("DATABASE_COMPILE_ONCE"):
    from django.conf import settings as django_settings

    os.environ["DATABASE_COMPILE_ONCE"] = django_settings.DATABASE_COMPILE_ONCE = "check"


def tool_required(path):
    """The path of a system tool; skips locally when missing, but fails in CI, where
    `make test` must have installed it."""
    if os.path.exists(path):
        return path
    message = f"{path} is not installed (`make test` installs it with apt-get)"
    if os.environ.get("CI") or os.environ.get("VETPACS_REQUIRE_TOOLS"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for(condition, timeout=60, interval=0.1, message="condition"):
    """Poll ``condition`` until it returns something truthy; the work under test is in another
    process, so there is nothing to join on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# Every test runs at one moment of the clinic's clock (vetclinic/clock.py), a Monday morning
# with the clinic open, whenever the suite runs; a test that needs another moment sets
# settings.CLOCK_NOW itself. Processes the tests start get it too (process_env).
CLINIC_NOW = "2026-11-23T09:00:00"
CLINIC_TODAY = date(2026, 11, 23)


@pytest.fixture(autouse=True)
def clinic_clock(settings):
    settings.CLOCK_NOW = CLINIC_NOW
    return CLINIC_NOW


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def nothing_kept():
    """Each test starts with nothing kept in the process (vetclinic/cache.py: species and breed
    codes, verified API keys, ...): the rollback after a test takes back the rows it made, but
    not what was remembered of them."""
    from vetclinic.cache import clear_all

    clear_all()


@pytest.fixture(scope="session", autouse=True)
def celery_test_queue():
    """A queue of this test run's own, so a worker left running by `make run` on the same
    broker never takes the tests' tasks (and the tests' worker never takes its)."""
    from vetclinic.celery import app

    queue = f"vetpacs-test-{uuid.uuid4().hex[:10]}"
    app.conf.task_default_queue = queue
    app.conf.task_default_exchange = queue
    app.conf.task_default_routing_key = queue
    return queue


@pytest.fixture
def storage_root(settings, tmp_path):
    """Stored objects of this test only, in a folder the test's processes share."""
    root = tmp_path / "storage"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "imaging.ingest.storage.DurableFileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


class Stopping:
    """The processes a test started (listeners, workers, beat), stopped side by side: the fixture
    that started one sends it SIGTERM as it is torn down, and ``wait()`` then waits for them all
    and prints their logs (shown by pytest when the test failed). A clean stop takes a second or
    two (a worker finishes its task, a listener its associations); one after the other, those
    seconds added up over the suite."""

    def __init__(self):
        self.pending = []

    def stop(self, process, log, *, timeout, tail):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        self.pending.append((process, log, timeout, tail))

    def wait(self):
        while self.pending:
            process, log, timeout, tail = self.pending.pop(0)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            print(log.read_text()[-tail:])


@pytest.fixture
def processes_stopping(transactional_db):
    """Torn down after every fixture that starts processes (they depend on it through
    process_env) and before the test database is emptied: nothing still running holds a table."""
    stopping = Stopping()
    yield stopping
    stopping.wait()


@pytest.fixture
def process_env(transactional_db, storage_root, celery_test_queue, settings, processes_stopping):
    """Environment for a process the tests start (worker, listener): the test database, the
    test's storage and this run's queue."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    queue_purge(celery_test_queue)  # what an earlier test queued and did not wait for
    return {
        **os.environ, "DATABASE_URL": url, "STORAGE_ROOT": str(storage_root), "CELERY_QUEUE": celery_test_queue,
        "THUMBNAIL_DELAY": "1", "METADATA_DELAY": "0", "PYTHONUNBUFFERED": "1", "VETPACS_NOW": str(settings.CLOCK_NOW or ""),
    }  # fmt: skip


def queue_purge(queue):
    from vetclinic.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        connection.default_channel.queue_purge(queue)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def dicom_listener_start(process_env, processes_stopping, tmp_path):
    """Start ``manage.py dicom_listener`` on a free port; returns a function (env overrides)."""
    started = []

    def start(processes=1, **env):
        port = free_port()
        log = tmp_path / f"listener-{port}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "dicom_listener", "--bind", "127.0.0.1", "--port", str(port),
                 "--processes", str(processes)],
                cwd=ROOT, env={**process_env, **env}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append((process, log))
        # Ready when it says so (a probe connection would leave an acceptor waiting for a request).
        wait_for(lambda: "DICOM listener VETPACS on" in log.read_text() or process.poll() is not None,
                 timeout=30, message="the DICOM listener")  # fmt: skip
        assert process.poll() is None, log.read_text()
        return types.SimpleNamespace(port=port, ae_title="VETPACS", process=process, log=log)

    yield start
    for process, log in started:
        processes_stopping.stop(process, log, timeout=30, tail=3000)


@pytest.fixture
def dicom_listener(dicom_listener_start):
    return dicom_listener_start()


@pytest.fixture
def celery_worker_start(process_env, processes_stopping, celery_test_queue, tmp_path):
    """Start real Celery worker processes on the configured broker, consuming this run's queue."""
    workers = []

    def start(*options):
        log = tmp_path / f"worker-{len(workers)}.log"
        with open(log, "w") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "vetclinic", "worker", "--pool", "solo",
                 "-Q", celery_test_queue, "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", *options],
                cwd=ROOT, env=process_env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        workers.append((worker, log))
        worker.log = log
        return worker

    yield start
    for worker, log in workers:
        processes_stopping.stop(worker, log, timeout=20, tail=4000)


@pytest.fixture
def celery_worker(celery_worker_start):
    return celery_worker_start()


@pytest.fixture
def reference_data(transactional_db):
    """Transactional tests empty every table afterwards, the migrations' data included:
    put back the vocabulary and the staff groups they load."""
    from django.apps import apps

    from imaging.models import Procedure
    from imaging.orders.catalog import procedures_load
    from vetclinic.roles import roles_sync

    vocabulary_restore()
    procedures_load(Procedure, Species)
    roles_sync(apps)


# The species and their 2,700 breeds as vocabulary_load first made them in this process, ids
# included: on PostgreSQL put back by COPY after each flush (0.6 s of each test's reference data
# went to building and inserting 2,700 Breed instances). The ids stay below what the sequences
# hand out next, which a DELETE does not reset.
VOCABULARY = {}


def vocabulary_restore():
    from patients.vocabulary import vocabulary_load

    if connection.vendor != "postgresql" or Species.objects.exists():
        vocabulary_load(Species, Breed)
        return
    if not VOCABULARY:
        vocabulary_load(Species, Breed)
        for model in (Species, Breed):
            columns = [field.column for field in model._meta.concrete_fields]
            VOCABULARY[model] = (columns, list(model.objects.order_by("pk").values_list(*columns)))
        return
    with connection.cursor() as cursor:
        for model, (columns, rows) in VOCABULARY.items():
            names = ", ".join(connection.ops.quote_name(column) for column in columns)
            with cursor.cursor.copy(
                f"COPY {connection.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)


@pytest.fixture
def actor():
    return Actor.system("tests")


@pytest.fixture
def dog(db):
    return Species.objects.get(scheme="SCT", code="448771007")


@pytest.fixture
def cat(db):
    return Species.objects.get(scheme="SCT", code="448169003")


@pytest.fixture
def labrador(db):
    return Breed.objects.get(scheme="SCT", code="62137007")


@pytest.fixture
def make_owner(db, actor):
    def make(family_name="Hartley", **fields):
        return owner_upsert(actor=actor, fields={"family_name": family_name, **fields})

    return make


@pytest.fixture
def make_patient(db, actor, dog):
    def make(name="Biscuit", owner=None, **fields):
        fields.setdefault("species", dog)
        return patient_upsert(actor=actor, fields={"name": name, **fields}, owner=owner)

    return make


@pytest.fixture
def stations(db):
    """A DR room, an ultrasound and a CT, registered as modalities (the worklist's stations)."""
    from imaging.models import Modality

    return {
        "DX": Modality.objects.create(
            ae_title="DRROOM", host="127.0.0.1", modality_type="DX", station_name="DR1", location="X-ray room"
        ),
        "US": Modality.objects.create(
            ae_title="USROOM", host="127.0.0.1", modality_type="US", station_name="US1", location="Scan room"
        ),
        "CT": Modality.objects.create(
            ae_title="CTROOM", host="127.0.0.1", modality_type="CT", station_name="CT1", location="CT suite"
        ),
    }


@pytest.fixture
def make_order(db, actor, stations):
    """Schedule a procedure (by catalog code) for an animal; ``at`` is an aware datetime."""
    from imaging.models import Procedure
    from imaging.orders.services import order_create

    def make(patient, code="DX-THX2", at=None, **details):
        procedure = Procedure.objects.get(code=code)
        station = details.pop("station", stations.get(procedure.modality_type))
        at = at or datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        return order_create(
            actor=actor, patient=patient, procedure=procedure, station=station, scheduled_start=at, **details
        )

    return make


@pytest.fixture
def staff(db):
    """One user per staff group, keyed by group name."""
    users = {}
    for group in ("front desk", "veterinarian", "radiologist", "admin"):
        user = User.objects.create_user(
            username=group.replace(" ", ""), password=PASSWORD, first_name=group.title(),
            is_staff=group == "admin",
        )  # fmt: skip
        user.groups.add(Group.objects.get(name=group))
        users[group] = user
    return users


@pytest.fixture
def storescp_reference(tmp_path):
    """dcmtk's storescp writing exactly what it receives (+B): the reference for "byte for byte"."""
    storescp = tool_required("/usr/bin/storescp")
    folder = tmp_path / "storescp"
    folder.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [storescp, "+B", "+xa", "-aet", "VETPACS", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()  # storescp shrugs this off
            return True
        except OSError:
            return False

    wait_for(listening, timeout=20, message="storescp")
    yield types.SimpleNamespace(port=port, folder=folder)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def queued(monkeypatch):
    """The study ids whose header rewrite the reconciliation services queued. Those tests run
    the rewrite themselves; a real worker runs tasks in test_dicom_store.py."""
    from imaging.reconcile import services as reconcile
    from imaging.reconcile import tasks

    ids = []

    def send_task(name, args):
        ids.extend(args) if name == tasks.study_headers_rewrite_task.name else ids.append(name)

    monkeypatch.setattr(reconcile, "current_app", types.SimpleNamespace(send_task=send_task))
    return ids


@pytest.fixture
def orthanc_start(tmp_path):
    """Start a throw-away Orthanc with its DICOMweb plugin (tests/orthanc.py); returns a function
    taking ``Orthanc``'s keyword arguments (``peers={"vetpacs": ("VETPACS", host, port)}``, ...),
    each one stopped at the end of the test."""
    from tests.orthanc import DICOMWEB_PLUGIN, ORTHANC, Orthanc

    tool_required(ORTHANC)
    tool_required(DICOMWEB_PLUGIN)
    started = []

    def start(**options):
        orthanc = Orthanc(tmp_path, name=f"orthanc-{len(started)}", **options)
        started.append(orthanc)
        return orthanc.start()

    yield start
    for orthanc in started:
        orthanc.stop()
        print(orthanc.log_tail())  # shown by pytest when the test failed


@pytest.fixture(scope="module")
def chromium(live_server):
    """One Chromium for a test module: starting Playwright's driver and the browser took more
    processor time than many a test (some 1.5 s on CI's 2 cores). Each test gets its own
    contexts in it (see browser), so no cookie, storage or cache passes from test to test."""
    executable = tool_required("/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, so Django would take the test's ORM
    # calls for async ones; the live server's database work happens in its own thread.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        yield browser
        browser.close()
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
