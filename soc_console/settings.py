"""One env-driven settings module.

No environment variables -> the embedded default: SQLite next to the code and Celery tasks run in-process
(``make demo``). ``DATABASE_URL`` / ``CELERY_BROKER_URL`` / ``REDIS_URL`` -> PostgreSQL and Redis with real
workers. ``SECRET_KEY`` is required whenever ``DEBUG`` is off.
"""

import os
from datetime import timedelta
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

# This project's own apps, lower layers first (DESIGN section 2). core.roles grants permissions over them.
PROJECT_APPS = [
    "core",
    "mailboxes",
    "mailflow",
    "restricted_users",
    "alerts",
    "investigations",
    "incidents",
    "console",
    "enforcement",
    "notifications",
    "m365",
    "mailstack",
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # Django's admin, mounted for superusers only (soc_console/admin_site.py): roles change elsewhere.
    "soc_console.apps.SuperuserAdminConfig",
    "axes",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    *PROJECT_APPS,
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
    # A GET on a POST-only URL (a reloaded form target) gets an explanatory page instead of a bare 405.
    "console.middleware.FriendlyMethodNotAllowedMiddleware",
    # Last: turns a locked-out sign-in into the "locked out, try again in …" page.
    "axes.middleware.AxesMiddleware",
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
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+address before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
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
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# Production (DEBUG off, real services) is served over TLS: plain HTTP is redirected (except /healthz, for
# probes on the private network), browsers are told to stay on HTTPS, and a session lasts a working day.
_SERVED_OVER_TLS = not DEBUG and not EMBEDDED
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=_SERVED_OVER_TLS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if _SERVED_OVER_TLS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading is a promise to browser vendors that cannot be taken back quickly: a deployer opts in.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)

# Sign-in throttling (django-axes) on /login/ and the admin login: after AXES_FAILURE_LIMIT wrong passwords
# for one username from one address, that pair is locked out for LOGIN_LOCKOUT_MINUTES (a wrong password
# during the lockout does not extend it); a success resets the count. Each lockout is audited.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "console.views.account.locked_out"
AXES_VERBOSE = False
# The client address is the socket's, unless a TLS proxy in front appends it to X-Forwarded-For: then it is
# the entry TRUSTED_PROXY_COUNT places from the right (never the left, which the client writes itself).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1)
AXES_CLIENT_IP_CALLABLE = "core.lockouts.client_address"

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
    "ENUM_NAME_OVERRIDES": {
        "M365SourceEnum": "m365.models.Source",
        "IncidentStatusEnum": "incidents.models.Incident.Status",
    },
    # `check --deploy` must not need the database (it runs in image builds); the schema has its own tests.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
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
        ("incidents.*", {"queue": "evaluate"}),
        ("notifications.*", {"queue": "notify"}),
        ("m365.*", {"queue": "pull"}),
        ("mailstack.*", {"queue": "pull"}),
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
    "mailstack.beat_drain": {"task": "mailstack.beat_drain", "schedule": 30.0},
    "mailstack.beat_read_sieve": {"task": "mailstack.beat_read_sieve", "schedule": 60.0},
    "mailstack.beat_sync_disabled": {"task": "mailstack.beat_sync_disabled", "schedule": 60.0},
    "investigations.beat_requeue_stalled_runs": {
        "task": "investigations.beat_requeue_stalled_runs",
        "schedule": 300.0,
    },
    "core.beat_purge_telemetry": {"task": "core.beat_purge_telemetry", "schedule": 3600.0},
    "core.beat_ensure_partitions": {"task": "core.beat_ensure_partitions", "schedule": 3600.0},
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
# On PostgreSQL, messages, sign-ins, directory changes (daily) and the ingest ledger (weekly) are partitioned
# by event time (core.partitions); beat creates the partitions of the window and of this many days ahead.
TELEMETRY_PARTITIONS_AHEAD_DAYS = env_int("TELEMETRY_PARTITIONS_AHEAD_DAYS", 7)

# /healthz reports beat as stale when its heartbeat is older than this.
BEAT_STALE_AFTER_SECONDS = env_int("BEAT_STALE_AFTER_SECONDS", 180)

# The Postfix policy service (DESIGN section 9): networks whose clients send outbound mail without SASL, and
# SASL logins that are not addresses mapped to mailboxes ("login=address,login2=address2").
ENFORCEMENT_TRUSTED_NETWORKS = env_str("ENFORCEMENT_TRUSTED_NETWORKS", "")
ENFORCEMENT_SASL_LOGINS = env_str("ENFORCEMENT_SASL_LOGINS", "")

# A resolved incident takes a user's new alert (and reopens) when the alert's evidence starts within this many
# hours of the incident's last activity; later evidence opens a new incident (DESIGN section 12).
INCIDENT_REOPEN_HOURS = env_int("INCIDENT_REOPEN_HOURS", 48)
if INCIDENT_REOPEN_HOURS < 0:
    raise ImproperlyConfigured("INCIDENT_REOPEN_HOURS is a number of hours (0 or more)")

# Releases of a restricted user per account before an override reason is required (DESIGN section 5).
RELEASE_CAP_COUNT = env_int("RELEASE_CAP_COUNT", 3)
RELEASE_CAP_DAYS = env_int("RELEASE_CAP_DAYS", 30)

# Tenant connector kinds -> dotted paths, so investigations never imports a platform connector.
CONNECTOR_KINDS = {
    "builtin": "investigations.connectors.BuiltinConnector",
    "m365": "m365.connector.M365Connector",
    "mailstack": "mailstack.connector.MailstackConnector",
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
# Each pull of message trace and sign-ins re-reads this much before its watermark: Entra ID and message trace
# rows arrive minutes late; stable event ids make the re-read rows duplicates.
M365_OVERLAP_SECONDS = env_int("M365_OVERLAP_SECONDS", 1800)
M365_PULL_LEASE_SECONDS = env_int("M365_PULL_LEASE_SECONDS", 900)
# Also read non-interactive sign-ins (Graph beta; a replayed token shows there), by each sign-ins pull.
M365_NON_INTERACTIVE_SIGN_INS = env_bool("M365_NON_INTERACTIVE_SIGN_INS", False)
# Self-hosted mail (mailstack/, DESIGN section 13): Postfix + Dovecot + Rspamd.
# doveadm's HTTP API key (Dovecot's doveadm_api_key); the URL is set per tenant on the Mail servers page.
MAILSTACK_DOVEADM_API_KEY = env_str("MAILSTACK_DOVEADM_API_KEY")
MAILSTACK_DOVEADM_TIMEOUT_SECONDS = env_int("MAILSTACK_DOVEADM_TIMEOUT_SECONDS", 10)
# Country of a sign-in: a MaxMind .mmdb (GeoLite2-Country / GeoIP2-Country) when set, else the database that
# ships with geoip2fast (embedded, updated with the package).
MAILSTACK_GEOIP_MMDB = env_str("MAILSTACK_GEOIP_MMDB")
# Dovecot's authentication policy: after this many failed sign-ins of one login (or from one address) within
# the window, each further attempt is tarpitted (Dovecot waits this many seconds before answering).
MAILSTACK_TARPIT_AFTER_FAILURES = env_int("MAILSTACK_TARPIT_AFTER_FAILURES", 5)
MAILSTACK_TARPIT_WINDOW_SECONDS = env_int("MAILSTACK_TARPIT_WINDOW_SECONDS", 900)
MAILSTACK_TARPIT_SECONDS = env_int("MAILSTACK_TARPIT_SECONDS", 10)
# Rspamd verdicts: a message with a symbol of these lists (or of a group named here) is phish / malware;
# else one of the spam actions makes it spam; else clean. Comma-separated; see the README.
MAILSTACK_PHISH_SYMBOLS = env_list(
    "MAILSTACK_PHISH_SYMBOLS",
    "PHISHING,PHISHED_OPENPHISH,PHISHED_PHISHTANK,PHISHED_GENERIC_SERVICE,group:phishing",
)
MAILSTACK_MALWARE_SYMBOLS = env_list(
    "MAILSTACK_MALWARE_SYMBOLS",
    "CLAM_VIRUS,FPROT_VIRUS,SAVAPI_VIRUS,KAS_VIRUS,AVAST_VIRUS,ESET_VIRUS,SOPHOS_VIRUS,MALWARE,group:antivirus",
)
MAILSTACK_SPAM_ACTIONS = env_list("MAILSTACK_SPAM_ACTIONS", "reject,add header,rewrite subject")
# Soft-deleted messages are moved to this folder of each internal recipient (and back on undo).
MAILSTACK_QUARANTINE_FOLDER = env_str("MAILSTACK_QUARANTINE_FOLDER", "Quarantine")
# "Force password reset": a command run with the address as its only argument (e.g. a script that expires
# the password in your passdb); unset -> a manual step naming MAILSTACK_PASSDB_DESCRIPTION.
MAILSTACK_PASSWORD_RESET_COMMAND = env_str("MAILSTACK_PASSWORD_RESET_COMMAND")
MAILSTACK_PASSDB_DESCRIPTION = env_str("MAILSTACK_PASSDB_DESCRIPTION", "Dovecot's passdb")
# Sieve scripts are read every this many seconds (beat checks every minute).
MAILSTACK_SIEVE_READ_SECONDS = env_int("MAILSTACK_SIEVE_READ_SECONDS", 300)

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
        # django-axes logs every sign-in at INFO; lockouts are in the audit log and logged at WARNING.
        "axes": {"level": env_str("AXES_LOG_LEVEL", "WARNING")},
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
# SMTP through EMAIL_HOST; unset -> the MTA on localhost:25 in production, and mails printed to the log in
# the embedded demo / DEBUG only (a mail that cannot be sent is retried, then shows as failed).
# Django 6.1 deprecates the EMAIL_* settings in favour of MAILERS.
_smtp_host = env_str("EMAIL_HOST") or ("" if DEBUG else "localhost")
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
# Webhook URLs whose host is (or resolves to) a loopback, private, link-local, multicast or reserved address
# are refused when saved and when delivered, unless an administrator allows them here (a receiver on the LAN).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS")
WEBHOOK_CA_BUNDLE = env_str("WEBHOOK_CA_BUNDLE")  # empty -> the system's trusted CAs
# Webhooks and mails: attempts before "failed", first retry delay (doubling, capped at an hour), and how long
# a claimed send may stay "sending" before beat hands it back.
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 8)
NOTIFY_RETRY_BACKOFF_SECONDS = env_int("NOTIFY_RETRY_BACKOFF_SECONDS", 30)
NOTIFY_LEASE_SECONDS = env_int("NOTIFY_LEASE_SECONDS", 120)
# A remediation action still Pending this long after it was proposed is announced once (``action.waiting``).
NOTIFY_ACTION_WAITING_MINUTES = env_int("NOTIFY_ACTION_WAITING_MINUTES", 60)
