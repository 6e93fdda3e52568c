"""The settings of the parts that have an embedded default and a production counterpart, for
settings.py: the database as each process uses it, where stored objects go, and the folders of
the serverless Celery broker. Each function reads the variables its part needs; README.md lists
them."""

from vetclinic.env import env, envint


def database_for_process(database, process):
    """The database settings ``database`` (dj_database_url's) as process ``process`` uses them."""
    database = {**database, "OPTIONS": dict(database.get("OPTIONS", {}))}
    postgresql = database["ENGINE"] == "django.db.backends.postgresql"
    if postgresql:
        # psycopg prepares a statement a connection has sent this many times, so that
        # PostgreSQL plans it once per connection. Only statements bound on the server are
        # prepared: the REST lists' pages and the worklist's rows (vetclinic/db.py); Django's
        # own queries are bound in the client and never are. 0 turns it off (a pooler in
        # transaction mode before pgbouncer 1.21 loses prepared statements between transactions).
        database["OPTIONS"]["prepare_threshold"] = envint("DATABASE_PREPARE_THRESHOLD", 5) or None
    if process == "hl7":
        # The pool threads that handle messages keep their connection from one message to the
        # next: opening one costs more than most messages (integrations/management/commands/
        # hl7_listener.py says what happens to one that broke meanwhile).
        database["CONN_MAX_AGE"] = database["CONN_MAX_AGE"] or None
    if postgresql and process in ("hl7", "dicom"):
        # Every HL7 message of a kind, every worklist query, sends the same statements with
        # other values: bound on the server, their text is the same for every value, so that
        # psycopg prepares them and PostgreSQL plans each once per connection instead of once
        # per message (~0.6 ms of a 6 ms ADT^A08).
        database["OPTIONS"]["server_side_binding"] = True
    if postgresql and process == "dicom":
        # Each association is served on threads of its own and Django's connections are per
        # thread: without a pool every association connects anew (a findscu query is one) and
        # its prepared statements go with the connection. An association takes an open
        # connection and gives it back when its threads end (imaging handlers' thread_ended).
        # At most two connections an association (its reactor's thread and its DUL's, which
        # serves C-STORE), 64 associations at once (imaging.dicom.net.ae.MAX_ASSOCIATIONS); those
        # left idle close after a minute. The pool checks each connection it hands out (one
        # round trip; CONN_HEALTH_CHECKS), so that after PostgreSQL comes back the first
        # association is served on a live connection, not refused on a dead one; while it is
        # down a caller waits at most `timeout` seconds for its refusal, well within a
        # modality's association timeout. Django pools only connections that close: CONN_MAX_AGE 0.
        database["CONN_MAX_AGE"] = 0
        database["CONN_HEALTH_CHECKS"] = True
        database["OPTIONS"]["pool"] = {"min_size": 2, "max_size": 2 * 64, "max_idle": 60, "timeout": 5}
    return database


def sqlite_options(var_dir):
    """The embedded default's database settings that SQLite needs on top of dj_database_url's."""
    return {
        # The test database is a file, not memory, so that a real Celery worker and the listeners,
        # started as separate processes by the tests, see the same data.
        "TEST": {"NAME": str(var_dir / "test.sqlite3")},
        # WAL lets the web process and the worker read while the other writes.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


def default_storage(backend, var_dir):
    """Django's default storage (STORAGES["default"]) for STORAGE_BACKEND ``backend``: local disk
    under var/storage (or STORAGE_ROOT), or an S3 bucket (STORAGE_S3_*)."""
    if backend == "s3":
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env("STORAGE_S3_BUCKET"),
                "endpoint_url": env("STORAGE_S3_ENDPOINT_URL") or None,
                "region_name": env("STORAGE_S3_REGION") or None,
                "access_key": env("STORAGE_S3_ACCESS_KEY") or None,
                "secret_key": env("STORAGE_S3_SECRET_KEY") or None,
                "location": env("STORAGE_S3_PREFIX"),
                "file_overwrite": False,
                "default_acl": None,
            },
        }
    if backend == "file":
        return {
            "BACKEND": "imaging.ingest.storage.DurableFileSystemStorage",
            "OPTIONS": {"location": env("STORAGE_ROOT", str(var_dir / "storage"))},
        }
    raise RuntimeError(f"STORAGE_BACKEND must be 'file' or 's3', not {backend!r}")


def filesystem_broker_options(var_dir):
    """kombu's filesystem transport under var/broker, its folders made: the default broker."""
    broker_dir = var_dir / "broker"
    for sub in ("queue", "processed", "control"):
        (broker_dir / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "processed_folder": str(broker_dir / "processed"),
        "control_folder": str(broker_dir / "control"),  # exchange bindings; default is the cwd
        "store_processed": False,
    }
