"""VetPACS settings, read from the environment.

With nothing set, VetPACS runs on the embedded default: SQLite, files and a Celery broker that
needs no server, all under ``var/``. The variables below switch each part to its production
counterpart; README.md lists them.
"""

import secrets
import shutil
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from vetclinic import security
from vetclinic.backends import (
    database_for_process,
    default_storage,
    filesystem_broker_options,
    sqlite_options,
)
from vetclinic.env import env, envbool, envint, envlist

BASE_DIR = Path(__file__).resolve().parent.parent


VAR_DIR = Path(env("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("DEBUG", True)


def _secret_key():
    """An explicit SECRET_KEY, or in development one generated once and kept under var/."""
    if env("SECRET_KEY"):
        return env("SECRET_KEY")
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

CLINIC_NAME = env("CLINIC_NAME", "VetPACS demo clinic")
# The letterhead of exported reports and the README of exported media (imaging/export/): lines
# separated by "\n" in the environment.
CLINIC_ADDRESS = env("CLINIC_ADDRESS", "").replace("\\n", "\n")
# Where staff reach the web UI; links sent to other systems (HL7 OBX, webhooks) start with it.
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# Prefix of generated clinic patient IDs (the DICOM Patient ID, LO: at most 64 characters).
PATIENT_ID_PREFIX = env("PATIENT_ID_PREFIX", "P")
# Prefix of accession numbers (SH: prefix + 8 digits must fit in 16 characters), so that two
# clinics' numbers never collide in a shared PMS or archive.
ACCESSION_PREFIX = env("ACCESSION_PREFIX", "VP")
if len(ACCESSION_PREFIX) > 8 or not ACCESSION_PREFIX.isalnum():
    raise ImproperlyConfigured("ACCESSION_PREFIX: at most 8 letters or digits")
# The clinic's DICOM UID root (PS3.5 9), if it has one; Study Instance UIDs of orders are
# made under it. Empty: UUID-derived UIDs under 2.25 (PS3.5 B.2).
DICOM_UID_ROOT = env("DICOM_UID_ROOT", "").rstrip(".")
if DICOM_UID_ROOT and (
    len(DICOM_UID_ROOT) > 30
    or not all(p.isdigit() and (p == "0" or p[0] != "0") for p in DICOM_UID_ROOT.split("."))
):
    raise ImproperlyConfigured("DICOM_UID_ROOT: dotted numbers without leading zeros, at most 30 characters")
# The clinic's clock (vetclinic/clock.py): empty, the real time; an ISO 8601 moment pins
# "now" for scheduling, for tests and demonstrations.
CLOCK_NOW = env("VETPACS_NOW", "")
# The day the scheduling page offers slots in (clinic local time, TIME_ZONE).
CLINIC_OPENS = env("CLINIC_OPENS", "08:00")
CLINIC_CLOSES = env("CLINIC_CLOSES", "19:00")
SLOT_MINUTES = envint("SLOT_MINUTES", 15)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "axes",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "vetclinic.audit",
    "patients",
    "imaging",
    "integrations",
    "sending",
    "sharing",
    "importing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before CommonMiddleware, as django-cors-headers asks; it acts on /dicomweb/ only (below).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "vetclinic.security.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "vetclinic.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "vetclinic.context_processors.clinic",
                "vetclinic.security.csp_nonce",
            ],
        },
    },
]

FORM_RENDERER = "vetclinic.forms.FormRenderer"

WSGI_APPLICATION = "vetclinic.wsgi.application"

# Which of VetPACS's processes this is: web, worker, dicom (manage.py dicom_listener) or hl7
# (manage.py hl7_listener). Set by the Procfile, and by manage.py for the listener commands
# (a listener started by hand gets its role all the same). Only the database options depend
# on it (backends.database_for_process: connection reuse, server-side binding, a pool).
VETPACS_PROCESS = env("VETPACS_PROCESS", "web")
if VETPACS_PROCESS not in ("web", "worker", "dicom", "hl7"):
    raise ImproperlyConfigured(f"VETPACS_PROCESS must be web, worker, dicom or hl7, not {VETPACS_PROCESS!r}")

# The hot paths' queries (HL7 lookups, the worklist's rows, the REST list pages) are compiled to
# SQL once per shape and run with new values (vetclinic/db.py). false: every query is built and
# compiled by Django each time, with the same results (a way to rule it out when in doubt).
# check: both, and a difference raises (what the test suite runs: tests/conftest.py).
DATABASE_COMPILE_ONCE = (
    "check" if env("DATABASE_COMPILE_ONCE", "") == "check" else envbool("DATABASE_COMPILE_ONCE", True)
)

# DATABASE_URL switches to PostgreSQL (postgres://user@host:5432/name); the default is SQLite.
DATABASES = {
    "default": database_for_process(
        dj_database_url.parse(
            env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'vetpacs.sqlite3'}"),
            conn_max_age=envint("DATABASE_CONN_MAX_AGE", 0),
        ),
        VETPACS_PROCESS,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # a test database file, WAL
    DATABASES["default"].update(sqlite_options(VAR_DIR))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes counts failed logins (the UI's and the admin's) in the database: after
# LOGIN_FAILURE_LIMIT failures for one username, or from one address, that username or address
# is refused, even with the right password, for LOGIN_LOCKOUT_MINUTES. If the database cannot
# say (axes' query fails), the login fails: no one gets in unchecked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind a reverse proxy the client's address is in X-Forwarded-For: give the number of proxies.
AXES_IPWARE_PROXY_COUNT = envint("LOGIN_PROXY_COUNT", 0) or None
if AXES_IPWARE_PROXY_COUNT:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
# A staff session ends after SESSION_IDLE_MINUTES without a request (a working day by default)
# and when the browser closes: a shared front-desk computer does not stay logged in overnight.
SESSION_COOKIE_AGE = envint("SESSION_IDLE_MINUTES", 10 * 60) * 60
SESSION_SAVE_EVERY_REQUEST = True  # each request starts the idle time afresh
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "vetclinic" / "static"]

# Stored objects (DICOM files, thumbnails, reports) go through Django's storage API:
# local disk under var/storage by default, an S3 bucket when STORAGE_BACKEND=s3.
STORAGE_BACKEND = env("STORAGE_BACKEND", "file")
STORAGES = {
    "default": default_storage(STORAGE_BACKEND, VAR_DIR),
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# The DICOM node (imaging/dicom): `manage.py dicom_listener`.
DICOM_AE_TITLE = env("DICOM_AE_TITLE", "VETPACS")
DICOM_PORT = envint("DICOM_PORT", 11112)
DICOM_BIND = env("DICOM_BIND", "0.0.0.0")
# Only registered modalities (imaging.Modality) may associate, unless this is on.
DICOM_ALLOW_ANY_AE = envbool("DICOM_ALLOW_ANY_AE", False)
# 128 KiB PDUs roughly double large-image throughput over pynetdicom's 16 KiB default.
DICOM_MAX_PDU = envint("DICOM_MAX_PDU", 131072)
# 0 would mean no maximum (PS3.8 D.1): a caller could then make the listener hold a PDU of any size.
if not 4096 <= DICOM_MAX_PDU <= 2**24:
    raise ImproperlyConfigured("DICOM_MAX_PDU: 4096 to 16777216 bytes")
# The listener's fast path (imaging/dicom/net/fast/, written for pynetdicom 3.0.4 only); off, the
# listener is plain pynetdicom. What it buys: benchmarks/README.md.
DICOM_FAST_PATH = envbool("DICOM_FAST_PATH", True)
# Storage Commitment (imaging/archive/commitment.py): how long the listener keeps waiting, on the
# request's association, for what was received to be indexed before the report goes on a new
# association instead; and how long after the request an object received but never indexed is
# waited for before it is reported failed (0110H). Reports that could not be delivered are sent
# again with a growing delay, at most COMMITMENT_DELIVERY_ATTEMPTS times.
COMMITMENT_ASSOCIATION_WAIT = envint("COMMITMENT_ASSOCIATION_WAIT", 30)
COMMITMENT_INDEX_WAIT = envint("COMMITMENT_INDEX_WAIT", 3600)
# (16: 1 s, 2 s ... 15 min apart, about two hours in all)
COMMITMENT_DELIVERY_ATTEMPTS = envint("COMMITMENT_DELIVERY_ATTEMPTS", 16)
# DICOM TLS for the listener (imaging/dicom/net/tls.py): a PEM certificate chain and its key (a key
# in the certificate file if empty); with a CA file, callers must present a certificate it signed.
DICOM_TLS_CERT = env("DICOM_TLS_CERT", "")
DICOM_TLS_KEY = env("DICOM_TLS_KEY", "") or None
DICOM_TLS_CA = env("DICOM_TLS_CA", "")
# Seconds after a series' first image before its thumbnail is drawn from its middle image.
THUMBNAIL_DELAY = envint("THUMBNAIL_DELAY", 20)
# Seconds after indexing before a batch's DICOM JSON is kept for WADO-RS /metadata
# (imaging/archive/metadata.py): off the index's path, after a modality's burst. /metadata
# computes what is not kept yet when it is read.
METADATA_DELAY = envint("METADATA_DELAY", 5)
# How many days back the periodic sweep looks for stored objects the index lacks.
STORAGE_SWEEP_DAYS = envint("STORAGE_SWEEP_DAYS", 2)
# Seconds between sweeps, and how old an unindexed object must be before the sweep takes it
# (younger ones may still be on their way through the queue).
STORAGE_SWEEP_SECONDS = envint("STORAGE_SWEEP_SECONDS", 300)
STORAGE_SWEEP_MIN_AGE = envint("STORAGE_SWEEP_MIN_AGE", 60)

# The HL7 v2 listener (integrations/hl7): `manage.py hl7_listener`.
HL7_PORT = envint("HL7_PORT", 2575)
HL7_BIND = env("HL7_BIND", "0.0.0.0")
# Larger messages are answered AR and not kept whole (MLLP has no length limit of its own).
HL7_MAX_MESSAGE_BYTES = envint("HL7_MAX_MESSAGE_BYTES", 4 * 1024 * 1024)
# How many messages (from different connections) are handled at once: the listener's threads,
# each with its own database connection. A connection's messages are always handled in turn.
HL7_THREADS = envint("HL7_THREADS", 8)
# Optional allow-lists: sending applications (MSH-3) and source addresses. Empty: anyone.
HL7_ALLOWED_SENDERS = envlist("HL7_ALLOWED_SENDERS", [])
HL7_ALLOWED_ADDRESSES = envlist("HL7_ALLOWED_ADDRESSES", [])
# TLS for the listener: a PEM certificate chain and its key.
HL7_TLS_CERT = env("HL7_TLS_CERT", "")
HL7_TLS_KEY = env("HL7_TLS_KEY", "")
# How we name ourselves in MSH-3/MSH-4 of ACKs and outbound messages.
HL7_APPLICATION = env("HL7_APPLICATION", "VETPACS")
HL7_FACILITY = env("HL7_FACILITY", "")

# Webhooks go to public addresses only: a URL whose host is or resolves to a loopback, private,
# link-local, multicast or reserved address is refused (at subscribe time and before each
# attempt), so that an API client cannot make the worker POST into the clinic's own network.
# An admin lists here the hosts (names, addresses or networks such as 192.168.1.0/24) of a
# PMS inside it.
WEBHOOK_ALLOWED_HOSTS = envlist("WEBHOOK_ALLOWED_HOSTS", [])
# A delivery is retried with exponential backoff (an hour apart at the most) until a 2xx, at
# most WEBHOOK_MAX_ATTEMPTS times; a subscription failing WEBHOOK_DISABLE_AFTER times in a row
# over at least WEBHOOK_DISABLE_HOURS is disabled. Each attempt waits WEBHOOK_TIMEOUT seconds
# for the answer (integrations/webhooks/delivery.py).
WEBHOOK_MAX_ATTEMPTS = envint("WEBHOOK_MAX_ATTEMPTS", 35)
WEBHOOK_DISABLE_AFTER = envint("WEBHOOK_DISABLE_AFTER", 50)
WEBHOOK_DISABLE_HOURS = envint("WEBHOOK_DISABLE_HOURS", 24)
WEBHOOK_TIMEOUT = envint("WEBHOOK_TIMEOUT", 10)

# How long finished log rows are kept (integrations/retention.py, pruned daily).
HL7_LOG_KEEP_DAYS = envint("HL7_LOG_KEEP_DAYS", 365)
WEBHOOK_LOG_KEEP_DAYS = envint("WEBHOOK_LOG_KEEP_DAYS", 90)
IDEMPOTENCY_KEY_KEEP_DAYS = envint("IDEMPOTENCY_KEY_KEEP_DAYS", 7)

# Celery. The default broker is kombu's filesystem transport under var/broker: no server to run.
# CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (or amqp://...) for production.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(VAR_DIR)
    # The filesystem transport has no fanout exchange for remote control: turn that off.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", "vetpacs")
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies mid-run is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # tasks write their effects to the database
# Ride out a broker outage, however long: retry the connection at start and after a loss for
# ever (Celery gives up after 100 tries by default, and the worker exits with beat in it).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the connection is lost finishes (its effects are committed) rather than
# being killed: its acknowledgement is lost with the connection, so the broker delivers it again
# later, and every task is idempotent.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Survives losing Redis while holding unacknowledged messages (vetclinic/celery.py says why).
CELERY_WORKER_CONSUMER = "vetclinic.celery:Consumer"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Index whatever the queue missed (broker down, worker killed): nothing stored is lost.
    "storage-sweep": {
        "task": "imaging.tasks.storage_sweep",
        "schedule": float(STORAGE_SWEEP_SECONDS),
        "kwargs": {"days": STORAGE_SWEEP_DAYS, "min_age_seconds": STORAGE_SWEEP_MIN_AGE},
    },
    # Webhook deliveries whose send was never queued (broker down when the event happened), and
    # one delivery held back per failing receiver, to probe it (integrations/webhooks/delivery.py).
    "webhook-sweep": {"task": "integrations.tasks.webhook_sweep", "schedule": 60.0},
    # Storage Commitment reports whose task was lost (broker down when the request came).
    "commitments-sweep": {"task": "imaging.tasks.commitments_sweep", "schedule": 300.0},
    # The HL7 message log, webhook deliveries and Idempotency-Keys past their keeping time.
    "logs-prune": {"task": "integrations.tasks.logs_prune", "schedule": 86400.0},
    # Routing rules: studies stable for their rule's time go to its destination (sending/).
    "routing-check": {"task": "sending.tasks.routing_check", "schedule": 30.0},
    "sends-sweep": {"task": "sending.tasks.sends_sweep", "schedule": 300.0},
}
# Sending (sending/): attempts at an unreachable destination, the first wait doubling each time.
SEND_ATTEMPTS = int(env("SEND_ATTEMPTS", "5"))
SEND_RETRY_SECONDS = int(env("SEND_RETRY_SECONDS", "30"))
CELERY_TIMEZONE = TIME_ZONE

# The REST API (integrations/api): API keys or a staff session, scopes per resource, one error
# shape, cursor pagination for incremental pulls.
# The largest request body read (Django's default, 2.5 MB): far over any API body (a report's
# text is at most 20,000 characters); the API answers a larger one with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "integrations.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "integrations.api.auth.ResourceScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["integrations.api.auth.ClientRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "integrations.api.pagination.Cursor",
    # A list's query parameters: its ``filterset_class`` (integrations/api/filters.py).
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "integrations.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["integrations.api.renderers.JSONRenderer"],
    # JSON with a size cap (DATA_UPLOAD_MAX_MEMORY_SIZE), a depth cap and no NUL (parsers.py).
    "DEFAULT_PARSER_CLASSES": ["integrations.api.parsers.JSONParser"],
    # OPTIONS describes nothing the schema does not: 405 (and no view needs a queryset for it).
    "DEFAULT_METADATA_CLASS": None,
}
# DICOMweb (integrations/dicomweb/): a browser page on another origin (an external viewer such as
# OHIF) may call /dicomweb/ only from the origins listed, e.g. "https://viewer.clinic.example";
# none by default. Other addresses never send CORS headers.
CORS_ALLOWED_ORIGINS = envlist("DICOMWEB_CORS_ORIGINS", [])
# The largest STOW-RS request body (bytes), answered 413 before it is read (a whole CT study can
# be a few GB; each instance goes to a temporary file and storage as it is read, never to memory).
DICOMWEB_STOW_MAX_BYTES = envint("DICOMWEB_STOW_MAX_BYTES", 4 * 1024**3)
# DICOMweb requests an API client may make a minute (or its own rate limit, if higher), counted
# apart from its REST API requests: a viewer loading a study asks for a frame per slice, hundreds
# in seconds (integrations/dicomweb/base.py DicomWebRateThrottle). Staff sessions are not limited.
DICOMWEB_RATE_LIMIT = envint("DICOMWEB_RATE_LIMIT", 30_000)
CORS_URLS_REGEX = r"^/dicomweb/.*$"
CORS_ALLOW_HEADERS = ["accept", "authorization", "content-type"]
CORS_EXPOSE_HEADERS = ["content-location", "content-type", "warning"]
# The public address of /dicomweb/ (e.g. "https://pacs.clinic.example/dicomweb/"), put in front of
# the BulkDataURIs of WADO-RS metadata. Empty: the request's own scheme and Host. Set it behind a
# proxy that rewrites Host, and for clients that send Host without the port (dicomweb-client does).
DICOMWEB_BASE_URL = env("DICOMWEB_BASE_URL", "")

SPECTACULAR_SETTINGS = {
    "TITLE": "VetPACS API",
    "DESCRIPTION": "Patients, imaging orders, studies and reports for practice-management systems.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # A request component apart from the response's (PatientRequest, Patient): a generated
    # client sends only what may be written, and reads what is shown.
    "COMPONENT_SPLIT_REQUEST": True,
    # A record id in a path (integrations/api/urls.py RecordId) is a whole number, as in a body.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}},
    # Sharing's choices (sharing/models.py), named apart from the other "kind" and "status" enums.
    "ENUM_NAME_OVERRIDES": {
        "ShareLinkKindEnum": "sharing.models.ShareLink.Kind",
        "ConsultStatusEnum": "sharing.models.ConsultRequest.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "integrations.api.schema.error_responses",
        "integrations.api.schema.decimals_as_numbers_too",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # a line per failed login is enough
        # pynetdicom logs every DIMSE message at INFO; our handlers log what matters per association.
        "pynetdicom": {"level": env("PYNETDICOM_LOG_LEVEL", "WARNING")},
    },
}

# The Content-Security-Policy (vetclinic/security.py), sent when DEBUG is off; empty: none.
CONTENT_SECURITY_POLICY = env("CONTENT_SECURITY_POLICY", security.POLICY)

if not DEBUG:
    SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = envbool("SECURE_COOKIES", True)
    # HTTPS only: plain HTTP is redirected, and browsers remember (HSTS) for SECURE_HSTS_SECONDS.
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
    # Behind a proxy that ends TLS: the header it sets, e.g. X-Forwarded-Proto.
    if env("SECURE_PROXY_SSL_HEADER"):
        SECURE_PROXY_SSL_HEADER = (
            "HTTP_" + env("SECURE_PROXY_SSL_HEADER").upper().replace("-", "_"),
            "https",
        )

# Photos and video (importing/photos.py): the largest file an upload may bring, each.
PHOTO_MAX_BYTES = envint("PHOTO_MAX_BYTES", 500 * 1024 * 1024)
# A phone JPEG whose EXIF Orientation is not 1 is turned upright (DICOM viewers ignore EXIF) by
# this jpegtran, losslessly in the DCT domain (`-perfect`); "" (or no jpegtran installed) decodes,
# turns and stores it uncompressed instead. Debian: libjpeg-turbo-progs.
PHOTO_JPEGTRAN = env("PHOTO_JPEGTRAN", shutil.which("jpegtran") or "")
# Share links (sharing/): how long a link lives unless its maker says otherwise, how many page
# views a minute one address may make with one link, and how many wrong access codes it may try
# before that link refuses it for SHARE_CODE_LOCKOUT_MINUTES (django-axes guards logins only).
SHARE_LINK_DAYS = envint("SHARE_LINK_DAYS", 7)
SHARE_RATE_LIMIT = envint("SHARE_RATE_LIMIT", 60)
SHARE_CODE_ATTEMPTS = envint("SHARE_CODE_ATTEMPTS", 5)
SHARE_CODE_LOCKOUT_MINUTES = envint("SHARE_CODE_LOCKOUT_MINUTES", 15)

# Importing through the web (importing/): the largest upload (a 413 before it is read), the
# largest file in it (refused, the rest kept), and how many files one request may carry (Django
# refuses more: a CD's folder is hundreds).
IMPORT_MAX_BYTES = envint("IMPORT_MAX_BYTES", 2 * 1024**3)
IMPORT_MAX_FILE_BYTES = envint("IMPORT_MAX_FILE_BYTES", 500 * 1024**2)
DATA_UPLOAD_MAX_NUMBER_FILES = envint("IMPORT_MAX_FILES", 5000)
