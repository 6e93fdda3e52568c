import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from patients.models import Breed, Species
from patients.services import owner_upsert, patient_upsert
from vetclinic.audit.services import Actor

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"


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


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
def process_env(transactional_db):
    """Environment for a process the tests start (worker, listener) that uses the test database."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def celery_worker(process_env, celery_test_queue, tmp_path):
    """A real Celery worker process on the configured broker, consuming this run's queue."""
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "vetclinic", "worker", "--pool", "solo",
             "-Q", celery_test_queue, "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=process_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    yield worker
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
    print(log.read_text()[-4000:])  # shown by pytest when the test failed


@pytest.fixture
def reference_data(transactional_db):
    """Transactional tests empty every table afterwards, the migrations' data included:
    put back the vocabulary and the staff groups they load."""
    from django.apps import apps

    from patients.vocabulary import vocabulary_load
    from vetclinic.roles import roles_sync

    vocabulary_load(Species, Breed)
    roles_sync(apps)


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
