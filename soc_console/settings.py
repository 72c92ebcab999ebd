"""One env-driven settings module.

No environment variables -> the embedded default: SQLite next to the code and Celery tasks run in-process
(``make demo``). ``DATABASE_URL`` / ``CELERY_BROKER_URL`` / ``REDIS_URL`` -> PostgreSQL and Redis with real
workers. ``SECRET_KEY`` is required whenever ``DEBUG`` is off.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """A string from the environment; ``NAME_FILE`` (a path to a secret) wins over ``NAME``."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DATABASE_URL = env_str("DATABASE_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
REDIS_URL = env_str("REDIS_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")

# Embedded mode: nothing configured, so SQLite and in-process tasks (the demo, a laptop).
EMBEDDED = not DATABASE_URL and not CELERY_BROKER_URL

DEBUG = env_bool("DEBUG", default=EMBEDDED)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off (set SECRET_KEY or SECRET_KEY_FILE)."
        )
    SECRET_KEY = "embedded-insecure-key-only-for-debug"  # noqa: S105 - never used with DEBUG off

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if not DEBUG else "*")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "core",
    "mailboxes",
    "mailflow",
    "restricted_users",
    "alerts",
    "investigations",
    "console",
    "enforcement",
    "notifications",
    "m365",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestIdMiddleware",
    "core.middleware.PermissionsPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "soc_console.urls"
WSGI_APPLICATION = "soc_console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.navigation",
            ],
        },
    },
]

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files after `collectstatic` in production; plain files for the demo and tests.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", default=not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Security headers. The console works air-gapped: every asset comes from 'self'.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Sent by core.middleware.PermissionsPolicyMiddleware: the console uses none of these browser features.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=()"
)
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG and not EMBEDDED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.DenyAll"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SOC console API",
    "DESCRIPTION": "Ingest telemetry and drive alerts, restrictions and investigations.",
    "VERSION": "1",
    "ENUM_NAME_OVERRIDES": {"M365SourceEnum": "m365.models.Source"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.document_error_responses",
    ],
}

# Celery: queues of DESIGN section 3. No broker configured -> tasks run in-process (embedded mode).
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=EMBEDDED)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "evaluate"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
TASK_QUEUES = ("evaluate", "investigate", "act", "notify", "pull", "beat")
CELERY_TASK_QUEUES = [Queue(name) for name in TASK_QUEUES]
# One ordered router: the first matching glob wins.
CELERY_TASK_ROUTES = (
    [
        ("*.beat_*", {"queue": "beat"}),
        ("alerts.*", {"queue": "evaluate"}),
        ("investigations.start", {"queue": "investigate"}),
        ("investigations.run", {"queue": "investigate"}),
        ("investigations.*", {"queue": "act"}),
        ("notifications.*", {"queue": "notify"}),
        ("m365.*", {"queue": "pull"}),
    ],
)
CELERY_BEAT_SCHEDULE = {
    "core.beat_heartbeat": {"task": "core.beat_heartbeat", "schedule": 60.0},
    "restricted_users.beat_tidy": {"task": "restricted_users.beat_tidy", "schedule": 60.0},
    "restricted_users.beat_resync_redis": {"task": "restricted_users.beat_resync_redis", "schedule": 60.0},
    "investigations.beat_reap_leases": {"task": "investigations.beat_reap_leases", "schedule": 60.0},
    "notifications.beat_retry": {"task": "notifications.beat_retry", "schedule": 30.0},
    "notifications.beat_waiting_actions": {"task": "notifications.beat_waiting_actions", "schedule": 300.0},
    "investigations.beat_expire_actions": {"task": "investigations.beat_expire_actions", "schedule": 300.0},
    "m365.beat_pull": {"task": "m365.beat_pull", "schedule": 60.0},
    "investigations.beat_requeue_stalled_runs": {
        "task": "investigations.beat_requeue_stalled_runs",
        "schedule": 300.0,
    },
    "core.beat_purge_telemetry": {"task": "core.beat_purge_telemetry", "schedule": 3600.0},
}

# Telemetry retention (DESIGN section 11): rows older than the window are purged hourly by beat, except the
# events behind an alert and the telemetry of a mailbox under an open investigation. 0 keeps rows forever.
# RETENTION_DAYS_<TABLE> sets one table's window; the ingest ledger keeps the id of every event still stored.
RETENTION_DAYS = env_int("RETENTION_DAYS", 30)
RETENTION_TABLES = ("messages", "sign_ins", "directory_changes", "ingest_ledger", "m365_pull_runs")
RETENTION_DAYS_PER_TABLE = {
    table: env_int(f"RETENTION_DAYS_{table.upper()}", RETENTION_DAYS) for table in RETENTION_TABLES
}
if RETENTION_DAYS < 0 or min(RETENTION_DAYS_PER_TABLE.values()) < 0:
    raise ImproperlyConfigured("RETENTION_DAYS and RETENTION_DAYS_<TABLE> are days (0 keeps rows forever)")

# /healthz reports beat as stale when its heartbeat is older than this.
BEAT_STALE_AFTER_SECONDS = env_int("BEAT_STALE_AFTER_SECONDS", 180)

# The Postfix policy service (DESIGN section 9): networks whose clients send outbound mail without SASL, and
# SASL logins that are not addresses mapped to mailboxes ("login=address,login2=address2").
ENFORCEMENT_TRUSTED_NETWORKS = env_str("ENFORCEMENT_TRUSTED_NETWORKS", "")
ENFORCEMENT_SASL_LOGINS = env_str("ENFORCEMENT_SASL_LOGINS", "")

# Releases of a restricted user per account before an override reason is required (DESIGN section 5).
RELEASE_CAP_COUNT = env_int("RELEASE_CAP_COUNT", 3)
RELEASE_CAP_DAYS = env_int("RELEASE_CAP_DAYS", 30)

# Tenant connector kinds -> dotted paths, so investigations never imports a platform connector.
CONNECTOR_KINDS = {
    "builtin": "investigations.connectors.BuiltinConnector",
    "m365": "m365.connector.M365Connector",
}
# Connector credentials (Microsoft 365 client secrets, certificate keys) are encrypted at rest with these
# Fernet keys (comma-separated, the first encrypts); unset -> a key derived from SECRET_KEY.
CONNECTOR_ENCRYPTION_KEYS = env_list("CONNECTOR_ENCRYPTION_KEYS")
# Microsoft 365 (m365/): the endpoints are settings so tests point them at a local fake over HTTPS.
M365_AUTHORITY_HOST = env_str("M365_AUTHORITY_HOST", "https://login.microsoftonline.com")
M365_GRAPH_URL = env_str("M365_GRAPH_URL", "https://graph.microsoft.com")
M365_MANAGEMENT_URL = env_str("M365_MANAGEMENT_URL", "https://manage.office.com")
M365_CA_BUNDLE = env_str("M365_CA_BUNDLE")  # empty -> the system's trusted CAs
M365_TIMEOUT_SECONDS = env_int("M365_TIMEOUT_SECONDS", 30)
M365_MAX_RETRIES = env_int("M365_MAX_RETRIES", 4)
# A Retry-After longer than this is not slept through: the pull stops and beat resumes it from its cursor.
M365_MAX_RETRY_AFTER_SECONDS = env_int("M365_MAX_RETRY_AFTER_SECONDS", 60)
# Pull cadence per source (seconds between pulls) and how far back a first pull reaches.
M365_PULL_INTERVALS = {
    "domains": env_int("M365_PULL_DOMAINS_SECONDS", 3600),
    "users": env_int("M365_PULL_USERS_SECONDS", 900),
    "message_trace": env_int("M365_PULL_MESSAGE_TRACE_SECONDS", 300),
    "sign_ins": env_int("M365_PULL_SIGN_INS_SECONDS", 300),
    "audit_exchange": env_int("M365_PULL_AUDIT_SECONDS", 300),
    "inbox_rules": env_int("M365_PULL_INBOX_RULES_SECONDS", 3600),
}
M365_INITIAL_LOOKBACK_HOURS = env_int("M365_INITIAL_LOOKBACK_HOURS", 48)
# Telemetry lands late at Microsoft (message trace and audit content by minutes): a pull reads up to this
# far behind now, so a window is only closed once its events have arrived.
M365_SETTLE_SECONDS = env_int("M365_SETTLE_SECONDS", 300)
M365_PULL_LEASE_SECONDS = env_int("M365_PULL_LEASE_SECONDS", 900)
# Remediation actions: a Running action whose worker has not finished within the lease is returned to Approved
# by the beat reaper; transient connector errors are retried with exponential backoff up to the attempt cap.
ACTION_LEASE_SECONDS = env_int("ACTION_LEASE_SECONDS", 300)
ACTION_MAX_ATTEMPTS = env_int("ACTION_MAX_ATTEMPTS", 5)
ACTION_RETRY_BACKOFF_SECONDS = env_int("ACTION_RETRY_BACKOFF_SECONDS", 10)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per task run is noise in embedded mode; workers log their own lifecycle.
        "celery.app.trace": {"level": env_str("CELERY_TRACE_LOG_LEVEL", "WARNING")},
    },
}

# Ingest API limits per request (DESIGN section 4); above them POST /api/v1/events/ answers 413.
INGEST_MAX_EVENTS = env_int("INGEST_MAX_EVENTS", 10_000)
INGEST_MAX_BYTES = env_int("INGEST_MAX_BYTES", 10 * 1024 * 1024)
# Event times outside [INGEST_EARLIEST_TIME, now + INGEST_MAX_FUTURE_SECONDS] are refused field by field.
INGEST_EARLIEST_TIME = env_str("INGEST_EARLIEST_TIME", "2000-01-01T00:00:00+00:00")
INGEST_MAX_FUTURE_SECONDS = env_int("INGEST_MAX_FUTURE_SECONDS", 86_400)
# The sub-address separator (Postfix's recipient_delimiter): user+tag@domain is the mailbox user@domain in
# ingest identity and in the policy service. Empty: no sub-addressing.
RECIPIENT_DELIMITER = env_str("RECIPIENT_DELIMITER", "+")
# Detection of one mailbox that failed is retried this many times (backoff 30 s, 60 s, ...), then logged.
DETECTION_MAX_RETRIES = env_int("DETECTION_MAX_RETRIES", 5)

# Notifications (notifications/): mail through Django's mailers, webhooks signed with HMAC-SHA256.
# No EMAIL_HOST -> mails are printed to the log (the demo); set it to send through an SMTP relay.
_smtp_host = env_str("EMAIL_HOST")  # Django 6.1 deprecates the EMAIL_* settings in favour of MAILERS
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": _smtp_host,
            "port": env_int("EMAIL_PORT", 25),
            "username": env_str("EMAIL_HOST_USER"),
            "password": env_str("EMAIL_HOST_PASSWORD"),
            "use_tls": env_bool("EMAIL_USE_TLS"),
            "use_ssl": env_bool("EMAIL_USE_SSL"),
            "timeout": env_int("EMAIL_TIMEOUT", 10),
        },
    }
    if _smtp_host
    else {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "SOC console <soc-console@localhost>")
# Absolute base of the links in mails and webhook bodies.
CONSOLE_BASE_URL = env_str("CONSOLE_BASE_URL", "http://127.0.0.1:8000")
# Who hears about restrictions and investigations when the sending-limit policy names no recipient.
SOC_NOTIFY_EMAILS = env_list("SOC_NOTIFY_EMAILS")
SOC_NOTIFY_DAILY_LIMIT = env_int("SOC_NOTIFY_DAILY_LIMIT", 20)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5)
# Webhooks and mails: attempts before "failed", first retry delay (doubling, capped at an hour), and how long
# a claimed send may stay "sending" before beat hands it back.
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 8)
NOTIFY_RETRY_BACKOFF_SECONDS = env_int("NOTIFY_RETRY_BACKOFF_SECONDS", 30)
NOTIFY_LEASE_SECONDS = env_int("NOTIFY_LEASE_SECONDS", 120)
# A remediation action still Pending this long after it was proposed is announced once (``action.waiting``).
NOTIFY_ACTION_WAITING_MINUTES = env_int("NOTIFY_ACTION_WAITING_MINUTES", 60)
