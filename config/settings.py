"""Settings, read from the environment with defaults that work on one machine.

Embedded default: SQLite (WAL) under var/ and a Celery broker kept in a folder
under var/, so `make run` needs no server. PostgreSQL through DATABASE_URL,
Redis or RabbitMQ through CELERY_BROKER_URL.
"""
from __future__ import annotations

from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet

from lib.env import env_bool, env_float, env_int, env_list, env_str
from lib.keyfile import read_or_create

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PUSHFLOW_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env_str("PUSHFLOW_SECRET_KEY") or read_or_create(VAR_DIR / "secret_key")
DEBUG = env_bool("PUSHFLOW_DEBUG", False)
ALLOWED_HOSTS = env_list("PUSHFLOW_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("PUSHFLOW_CSRF_TRUSTED_ORIGINS", [])

# Behind HTTPS (PUSHFLOW_HTTPS=true): secure cookies, HSTS, redirect to https. The embedded
# default serves plain HTTP on one machine, where secure-only cookies could not log anyone in.
HTTPS = env_bool("PUSHFLOW_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = HTTPS and env_bool("PUSHFLOW_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("PUSHFLOW_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS and env_bool("PUSHFLOW_HSTS_PRELOAD", True)
if env_bool("PUSHFLOW_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "accounts",
    "formats",
    "connections",
    "listeners",
    "flows",
    "events",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'pushflow.sqlite3'}"
# Health checks: a kept connection is tested (one round trip) before its first use in each request, so
# after a database restart no request fails on a connection that died meanwhile (each thread's would).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("PUSHFLOW_DB_CONN_MAX_AGE", 60),
                                              conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0 if ":memory:" in DATABASES["default"]["NAME"] else 60
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run beside the one writer; IMMEDIATE takes the write
        # lock up front so concurrent writers wait (busy timeout) instead of
        # failing with "database is locked" on a read-to-write upgrade.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTHENTICATION_BACKENDS = ["accounts.lockout.LockoutModelBackend"]
PUSHFLOW_LOCKOUT_FAILURES = env_int("PUSHFLOW_LOCKOUT_FAILURES", 10)
PUSHFLOW_LOCKOUT_SECONDS = env_int("PUSHFLOW_LOCKOUT_SECONDS", 15 * 60)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("PUSHFLOW_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "accounts.authentication.CachedBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "lib.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pushflow API",
    "DESCRIPTION": "Listeners, formats, connections, flows, messages and runs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Docs assets served by Pushflow itself: many sites run without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Pushflow ---
PUSHFLOW_TOKEN_TTL_SECONDS = env_int("PUSHFLOW_TOKEN_TTL_SECONDS", 24 * 3600)
# How long one process trusts a token it has checked (a deactivated user is refused after at most this).
PUSHFLOW_TOKEN_CACHE_SECONDS = env_float("PUSHFLOW_TOKEN_CACHE_SECONDS", 5.0)
PUSHFLOW_DEFAULT_MAX_BODY_BYTES = env_int("PUSHFLOW_DEFAULT_MAX_BODY_BYTES", 10 * 1024 * 1024)
PUSHFLOW_INLINE_BODY_BYTES = env_int("PUSHFLOW_INLINE_BODY_BYTES", 256 * 1024)
# Hosts or CIDR ranges outbound HTTP may reach although private, loopback or link-local.
PUSHFLOW_OUTBOUND_ALLOW = env_list("PUSHFLOW_OUTBOUND_ALLOW", [])
# Accepted messages of concurrent requests share one INSERT and one COMMIT (listeners/writer.py).
PUSHFLOW_GROUP_COMMIT = env_bool("PUSHFLOW_GROUP_COMMIT", True)
# Plain pushes accepted on the web server's event loop, with no thread waiting for their commit
# (listeners/loop_ingest.py); off: every push goes to the ingest view on a thread.
PUSHFLOW_LOOP_INGEST = env_bool("PUSHFLOW_LOOP_INGEST", True)
PUSHFLOW_BODY_DIR = Path(env_str("PUSHFLOW_BODY_DIR", str(VAR_DIR / "bodies")))
PUSHFLOW_LISTENER_CACHE_SECONDS = env_float("PUSHFLOW_LISTENER_CACHE_SECONDS", 1.0)
PUSHFLOW_SWEEP_SECONDS = env_float("PUSHFLOW_SWEEP_SECONDS", 15.0)
# A message queued longer than this without being picked up is enqueued again.
PUSHFLOW_REQUEUE_AFTER_SECONDS = env_float("PUSHFLOW_REQUEUE_AFTER_SECONDS", 30.0)
# A message claimed by a worker that stopped renewing its claim this long ago is taken back
# (a live worker renews its claims every quarter of this, however long the run: flows/leases.py).
PUSHFLOW_RUN_LEASE_SECONDS = env_float("PUSHFLOW_RUN_LEASE_SECONDS", 600.0)
# Worker commits on PostgreSQL do not wait for the log flush (each is redone if lost; see lib/dbwrites.py).
PUSHFLOW_WORKER_RELAXED_COMMITS = env_bool("PUSHFLOW_WORKER_RELAXED_COMMITS", True)
# After its own messages, a worker's task goes on this long with messages nobody was told of yet
# (flows/services.run_messages); 0: each task runs only its own.
PUSHFLOW_WORKER_TAKE_MORE_SECONDS = env_float("PUSHFLOW_WORKER_TAKE_MORE_SECONDS", 1.0)
PUSHFLOW_MAX_ATTEMPTS = env_int("PUSHFLOW_MAX_ATTEMPTS", 5)
# Days finished messages without a listener (read by timed flows) are kept; 0: forever.
PUSHFLOW_RETENTION_DAYS = env_int("PUSHFLOW_RETENTION_DAYS", 30)
PUSHFLOW_BODY_READ_TIMEOUT_SECONDS = env_float("PUSHFLOW_BODY_READ_TIMEOUT_SECONDS", 10.0)
# Fernet keys for connection secrets, newest first; older keys still decrypt (rotation).
PUSHFLOW_ENCRYPTION_KEYS = env_list("PUSHFLOW_ENCRYPTION_KEYS") or [
    read_or_create(VAR_DIR / "encryption_key", make=lambda: Fernet.generate_key().decode())
]
PUSHFLOW_PUBLIC_URL = env_str("PUSHFLOW_PUBLIC_URL", "")
PUSHFLOW_PORT = env_int("PORT", 8000)

# --- Business events (events/) ---
# Kept flow outputs (for output.ready subscribers and pull queues) live here.
PUSHFLOW_OUTPUT_DIR = Path(env_str("PUSHFLOW_OUTPUT_DIR", str(VAR_DIR / "outputs")))
# Days a kept output stays downloadable (unless still waiting in a queue); 0: forever.
PUSHFLOW_OUTPUT_RETENTION_DAYS = env_int("PUSHFLOW_OUTPUT_RETENTION_DAYS", 7)
# How long a signed download URL works.
PUSHFLOW_DOWNLOAD_URL_SECONDS = env_int("PUSHFLOW_DOWNLOAD_URL_SECONDS", 3600)
# Waits before each retry of a webhook delivery (seconds): 1 min, 5 min, 30 min, 2 h, 5 h, 10 h.
PUSHFLOW_WEBHOOK_RETRY_SECONDS = [int(s) for s in env_list("PUSHFLOW_WEBHOOK_RETRY_SECONDS",
                                                           ["60", "300", "1800", "7200", "18000", "36000"])]
PUSHFLOW_WEBHOOK_TIMEOUT_SECONDS = env_float("PUSHFLOW_WEBHOOK_TIMEOUT_SECONDS", 10.0)
# A subscription whose deliveries failed every retry this many times in a row is disabled.
PUSHFLOW_WEBHOOK_DISABLE_AFTER = env_int("PUSHFLOW_WEBHOOK_DISABLE_AFTER", 5)
# After a subscription's secret is rotated, deliveries are signed with the old one too for this long (24 h).
PUSHFLOW_WEBHOOK_SECRET_GRACE_SECONDS = env_int("PUSHFLOW_WEBHOOK_SECRET_GRACE_SECONDS", 86400)
# How long a process trusts its picture of which flows have subscribers or queues.
PUSHFLOW_EVENTS_CACHE_SECONDS = env_float("PUSHFLOW_EVENTS_CACHE_SECONDS", 1.0)

# --- Celery ---
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "embedded://localhost/"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("embedded://"):
    _broker_dir = Path(env_str("PUSHFLOW_BROKER_DIR", str(VAR_DIR / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        # How often the worker looks for tasks in the folder. It looks again only after this much
        # once its processes are busy, so a longer pause idles them between tasks: at 50 ms the
        # embedded worker ran ~180 messages/s under load, at 10 ms ~320/s (bench/latency.py), for
        # 1% more of a core while idle.
        "polling_interval": env_float("PUSHFLOW_BROKER_POLL_SECONDS", 0.01),
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A task a worker took but never acknowledged (the worker died) comes back after this;
    # longer than the longest run, so a slow run is never handed to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(2 * PUSHFLOW_RUN_LEASE_SECONDS)}
# Queues by kind of work, so a deployment can give each its own workers (the launcher's worker takes all).
CELERY_TASK_DEFAULT_QUEUE = "ingest"
# Webhook deliveries wait on other servers: they go beside maintenance, never in front of ingest.
CELERY_TASK_ROUTES = {"flows.run_timed_flow": {"queue": "timed"}, "listeners.*": {"queue": "maintenance"},
                      "events.*": {"queue": "maintenance"}}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("PUSHFLOW_BROKER_TIMEOUT_SECONDS", 3.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Publishing happens after the message row is committed; if the broker is down
# the sweeper enqueues the message later, so a publish must fail fast.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "pushflow-sweep-queued": {
        "task": "listeners.sweep_queued_messages",
        "schedule": PUSHFLOW_SWEEP_SECONDS,
    },
    "pushflow-retry-deliveries": {
        "task": "events.retry_due_deliveries",
        "schedule": PUSHFLOW_SWEEP_SECONDS,
    },
    "pushflow-purge-old-outputs": {
        "task": "events.purge_old_outputs",
        "schedule": 3600.0,
    },
    "pushflow-purge-old-messages": {
        "task": "listeners.purge_old_messages",
        "schedule": 3600.0,
    },
}
CELERY_TASK_ALWAYS_EAGER = env_bool("PUSHFLOW_TASKS_EAGER", False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("PUSHFLOW_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
