"""The environment variables switch each part from the embedded default to production."""

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "db": settings.DATABASES["default"]["ENGINE"], "db_name": str(settings.DATABASES["default"]["NAME"]),
    "storage": settings.STORAGES["default"]["BACKEND"], "options": settings.STORAGES["default"].get("OPTIONS", {}),
    "broker": settings.CELERY_BROKER_URL, "debug": settings.DEBUG,
}, default=str))
"""


def settings_with(tmp_path, **env):
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, (json.loads(result.stdout) if result.returncode == 0 else result.stderr)


def test_nothing_set_means_sqlite_local_files_and_a_serverless_broker(tmp_path):
    code, found = settings_with(tmp_path)
    assert code == 0, found
    assert found["db"] == "django.db.backends.sqlite3"
    assert found["db_name"] == str(tmp_path / "vetpacs.sqlite3")
    assert found["storage"] == "imaging.ingest.storage.DurableFileSystemStorage"
    assert found["options"]["location"] == str(tmp_path / "storage")
    assert found["broker"] == "filesystem://"
    assert (tmp_path / "broker" / "queue").is_dir()


def test_the_variables_switch_to_postgresql_redis_and_s3(tmp_path):
    code, found = settings_with(
        tmp_path,
        DATABASE_URL="postgres://vetpacs:secret@db.example:5432/vetpacs",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        STORAGE_BACKEND="s3", STORAGE_S3_BUCKET="clinic-images", STORAGE_S3_ENDPOINT_URL="http://127.0.0.1:9000",
    )  # fmt: skip
    assert code == 0, found
    assert found["db"] == "django.db.backends.postgresql"
    assert found["broker"] == "redis://127.0.0.1:6379/0"
    assert found["storage"] == "storages.backends.s3.S3Storage"
    assert found["options"]["bucket_name"] == "clinic-images"
    assert found["options"]["endpoint_url"] == "http://127.0.0.1:9000"


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    code, error = settings_with(tmp_path, DEBUG="false")
    assert code != 0
    assert "SECRET_KEY must be set" in error


def test_an_unknown_storage_backend_is_named_in_the_error(tmp_path):
    code, error = settings_with(tmp_path, STORAGE_BACKEND="floppy")
    assert code != 0
    assert "STORAGE_BACKEND must be 'file' or 's3', not 'floppy'" in error


def test_make_runs_first_steps_work_on_the_embedded_default(tmp_path):
    """`make run` on a machine with only Python: every migration applies to a new SQLite database
    (PostgreSQL-only SQL in a migration stopped it once) and the demo is seeded on it."""
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "vetclinic.settings", "VAR_DIR": str(tmp_path)}
    for command in (
        ["migrate", "--noinput"],
        ["seed_demo", "--if-empty"],
        ["makemigrations", "--check", "--dry-run"],
    ):
        result = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
