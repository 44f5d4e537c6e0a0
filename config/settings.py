"""Rowbell settings, read from the environment (see .env.example for every variable)."""

from pathlib import Path
from urllib.parse import unquote

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# A fixed development key keeps `./scripts/dev` working out of the box; production must set its own.
SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-rowbell-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. Off by default so that development over plain http://127.0.0.1 works; production turns them on
# (README "Running in production", config/production.env.example, checked by `manage.py check --deploy`).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Paths (regular expressions, without the leading slash) served over plain HTTP anyway, e.g. a health check.
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[])
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)


def _proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """ "HTTP_X_FORWARDED_PROTO,https" -> the (header, value) pair a TLS-terminating proxy sets; "" -> None."""
    if not value.strip():
        return None
    header, _, expected = (part.strip() for part in value.partition(","))
    if not header.startswith("HTTP_") or not expected:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must look like HTTP_X_FORWARDED_PROTO,https (the header as Django "
            "names it in request.META, a comma, the value meaning HTTPS)."
        )
    return header, expected


# Behind a proxy that terminates TLS: the header (and value) it sets on HTTPS requests. Set it ONLY when the
# proxy always sets or strips that header, or clients could claim HTTPS.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env.str("SECURE_PROXY_SSL_HEADER", default=""))

# Content-Security-Policy (django-csp) on every response: scripts, styles, images, fonts and requests only
# from Rowbell itself, and no inline script or style (pages load static/js and static/css files). Email HTML
# is shown from its own URL with a policy of its own (runs/email_body.py); django-rq's dashboard alone may
# use inline script and style (config/csp.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Fernet keys for secrets at rest. The first key encrypts; all of them decrypt, so keys can be rotated
# by prepending a new one. When unset, a key is derived from SECRET_KEY (fine for development only).
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    "django_rq",
    "rest_framework",
    "drf_spectacular",
    "tenants",
    "workflows",
    "runs",
    "integrations",
    "consent",
]

MIDDLEWARE = [
    # First: everything after it (sign-in lockout, /metrics' networks, the logs) sees the client's address.
    "common.client_address.ClientAddressMiddleware",
    # Headers too long for any view are a 431 in the answer's own format (JSON under /api/ and /hooks/).
    "common.input_guard.RejectLongHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.csp.RelaxedPolicyForThirdPartyPages",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.TenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A NUL character in a URL, query or form is a 400 before any view can try to store it.
    "common.input_guard.RejectNulMiddleware",
]

ROOT_URLCONF = "config.urls"

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
                "tenants.context_processors.tenant",
                "integrations.context_processors.provider_channels",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/rowbell"),
}
# A unix-socket directory can be given percent-encoded as the host (postgres://u@%2Ftmp%2Fpg/db).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# Django's cache (sign-in rate limits) lives in the same Redis as RQ, under its own key prefix.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "rowbell-cache",
    }
}
# Sign-in attempts allowed per username (stripped, NFKC, casefolded: as authentication reads it) and IP
# address within SIGNIN_LOCKOUT_SECONDS.
SIGNIN_MAX_FAILURES = env.int("SIGNIN_MAX_FAILURES", default=5)
# Failures for one account from all addresses together (a guesser spread over many addresses).
SIGNIN_ACCOUNT_MAX_FAILURES = env.int("SIGNIN_ACCOUNT_MAX_FAILURES", default=50)
SIGNIN_LOCKOUT_SECONDS = env.int("SIGNIN_LOCKOUT_SECONDS", default=900)
# Invitation links stay valid this long (each works once, for the invited address).
INVITE_MAX_AGE_SECONDS = env.int("INVITE_MAX_AGE_SECONDS", default=7 * 86400)

# Two queues: `default` for step executions, `low` for bulk fan-out work, so that one tenant's huge
# fan-out does not sit in front of another tenant's single welcome email.
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600},
    "low": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600},
}
RQ_SHOW_ADMIN_LINK = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / ".data" / "staticfiles"
# Serve straight from the app folders too, so a fresh checkout works before `collectstatic`.
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Outgoing email for the platform (and, for now, for every tenant's email steps).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("EMAIL_PORT", default=1025)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=15)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Rowbell <rowbell@localhost>")
# The address recipients reach Rowbell at, for absolute links in emails (unsubscribe pages): scheme and
# host, no trailing slash, e.g. https://notify.example.com.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# Steps without "allow unsubscribe" (receipts, password resets) ignore unsubscribes, even "from
# everything"; false makes them honour unsubscribes too. Suppressions (bounces, complaints) always apply.
CONSENT_TRANSACTIONAL_IGNORES_UNSUBSCRIBES = env.bool(
    "CONSENT_TRANSACTIONAL_IGNORES_UNSUBSCRIBES", default=True
)
# An ESP instead of SMTP: EMAIL_BACKEND=anymail.backends.<esp>.EmailBackend (django-anymail) and its
# settings as JSON, e.g. ANYMAIL='{"POSTMARK_SERVER_TOKEN": "..."}' (anymail's documentation lists them).
ANYMAIL = env.json("ANYMAIL", default={})

# Requests per API key per window (tenants/throttling.py); 0 turns the limit off. Over it: 429, Retry-After.
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=600)
API_RATE_WINDOW_SECONDS = env.int("API_RATE_WINDOW_SECONDS", default=60)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.RowbellAutoSchema",
    # Every error body is {"detail": "..."}, as the schema says.
    "EXCEPTION_HANDLER": "tenants.api.api_exception_handler",
}
from common.api_schema_components import JSON_COMPONENTS  # noqa: E402 (plain data, no Django import)

SPECTACULAR_SETTINGS = {
    "TITLE": "Rowbell API",
    "DESCRIPTION": "Notification workflows driven by changes in your PostgreSQL database.",
    "VERSION": "0.1.0",
    # 3.1: full JSON Schema, so the schema can say which JSON is accepted (config/api_schema.py).
    "OAS_VERSION": "3.1.0",
    "APPEND_COMPONENTS": {"schemas": JSON_COMPONENTS},
    # Three models have a `status` with different choices: name each set after its model.
    "ENUM_NAME_OVERRIDES": {
        "WorkflowStatusEnum": "workflows.models.Workflow.Status",
        "RunStatusEnum": "runs.models.Run.Status",
        "ExecutionStatusEnum": "runs.models.StepExecution.Status",
        "BackgroundJobStatusEnum": "workflows.models.PublishPreview.Status",
    },
}

# LOG_FORMAT=json writes one JSON object per line (time, level, logger, message, tenant_id, run_id,
# step_id, execution_id when known, exception); `text` (the default) is for people.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
# LOG_HOUSEKEEPING=true also logs the periodic jobs' routine lines (config/logfilters.py), ~85 a minute.
LOG_HOUSEKEEPING = env.bool("LOG_HOUSEKEEPING", default=False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "engine_context": {"()": "common.logs.EngineContextFilter"},
        "housekeeping": {"()": "config.logfilters.QuietHousekeeping"},
    },
    "formatters": {
        "json": {"()": "common.logs.JsonFormatter"},
        "text": {"format": "%(levelname)s %(name)s %(context)s%(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["engine_context"] if LOG_HOUSEKEEPING else ["engine_context", "housekeeping"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- The engine (runs/engine/) -------------------------------------------------------------------------
# Executions claimed per RQ job: bigger batches amortise SQL and SMTP set-up, smaller ones interleave tenants.
ENGINE_BATCH_SIZE = env.int("ENGINE_BATCH_SIZE", default=200)
# At most this many batch jobs of one fan-out (one run's step) sit in the queues at a time, so other
# tenants' jobs interleave with a 100,000-item fan-out at batch granularity.
ENGINE_FANOUT_PARALLELISM = env.int("ENGINE_FANOUT_PARALLELISM", default=2)
# At most this many batch jobs of one tenant run at once (0: no limit); the rest are re-queued a
# second later so that workers serve other tenants meanwhile.
ENGINE_TENANT_CONCURRENCY = env.int("ENGINE_TENANT_CONCURRENCY", default=4)
# A fan-out writes its executions in bulk inserts of this many rows, and its batches start after the first.
ENGINE_FANOUT_CHUNK = env.int("ENGINE_FANOUT_CHUNK", default=2000)
# A step that produces more items than this has its children's batches queued on `low`, not `default`.
ENGINE_FANOUT_LOW_QUEUE_AT = env.int("ENGINE_FANOUT_LOW_QUEUE_AT", default=20)
# A batch whose step produced at most this many items runs its child steps in the same job (up to
# ENGINE_FOLLOW_MAX_STEPS steps and ENGINE_FOLLOW_MAX_SECONDS), instead of queuing a job per step.
ENGINE_FOLLOW_MAX_ITEMS = env.int("ENGINE_FOLLOW_MAX_ITEMS", default=20)
ENGINE_FOLLOW_MAX_STEPS = env.int("ENGINE_FOLLOW_MAX_STEPS", default=10)
ENGINE_FOLLOW_MAX_SECONDS = env.float("ENGINE_FOLLOW_MAX_SECONDS", default=2.0)
# Sends through HTTP APIs (HTTP request and Slack steps, email through an ESP with django-anymail) keep up
# to this many requests of a batch in flight at once (a thread pool per batch); 1 sends one at a time.
ENGINE_SEND_CONCURRENCY = env.int("ENGINE_SEND_CONCURRENCY", default=32)
# Email through an SMTP server: this many connections per batch, each sending one message at a time
# (a mail server limits a client's connections: Postfix allows 50 by default); 1 sends one at a time.
EMAIL_SMTP_CONNECTIONS = env.int("EMAIL_SMTP_CONNECTIONS", default=4)
# The platform's own mail server's limit (recipients a second, shared by every worker; 0: none) and burst
# (0: one second's worth). Tenants' providers set theirs on their pages (integrations/ratelimit.py).
EMAIL_RATE_PER_SECOND = env.float("EMAIL_RATE_PER_SECOND", default=0.0)
EMAIL_RATE_BURST = env.int("EMAIL_RATE_BURST", default=0)
# A message left `sending` by a stopped worker is looked up at its provider (Postmark, Mailgun); "not
# there" is trusted only once the message is this many seconds old (their searches lag a little).
PROVIDER_LOOKUP_SETTLE_SECONDS = env.float("PROVIDER_LOOKUP_SETTLE_SECONDS", default=60.0)
# Retries (a step may set its own max_attempts and retry_base_seconds; the factor and the cap are global).
ENGINE_MAX_ATTEMPTS = env.int("ENGINE_MAX_ATTEMPTS", default=10)
ENGINE_RETRY_BASE_SECONDS = env.float("ENGINE_RETRY_BASE_SECONDS", default=2.0)
ENGINE_RETRY_FACTOR = env.float("ENGINE_RETRY_FACTOR", default=3.0)
ENGINE_RETRY_MAX_SECONDS = env.float("ENGINE_RETRY_MAX_SECONDS", default=3600.0)
# The backstop for a worker that is alive but stuck: an execution `running` longer than this is made
# pending again by the sweeper (it is also each batch job's RQ timeout). A worker that is gone is noticed
# sooner, by its heartbeat (below).
ENGINE_EXECUTION_TIMEOUT = env.int("ENGINE_EXECUTION_TIMEOUT", default=900)
# Every Procfile process writes a heartbeat row every HEARTBEAT_INTERVAL seconds (runs/engine/liveness.py).
# A worker whose heartbeat is older than WORKER_LEASE_SECONDS is gone: the sweeper returns what it had
# claimed to `pending` at its next sweep, and a worker that wakes up after that long stops its batch.
HEARTBEAT_INTERVAL = env.float("HEARTBEAT_INTERVAL", default=3.0)
WORKER_LEASE_SECONDS = env.float("WORKER_LEASE_SECONDS", default=15.0)
# How many attempts (time, duration, outcome, error) each execution keeps for the run page.
ENGINE_ATTEMPT_LOG_SIZE = env.int("ENGINE_ATTEMPT_LOG_SIZE", default=20)
# A provider's throttling (429, Retry-After) uses no attempt, but not forever: this long after an execution
# was created, its refusals count as attempts, so a provider that always refuses ends in a failure.
ENGINE_THROTTLED_GIVE_UP_SECONDS = env.int("ENGINE_THROTTLED_GIVE_UP_SECONDS", default=86400)
# Delays shorter than this go to RQ's scheduler too (lower latency); longer ones are left to the sweeper.
ENGINE_SCHEDULE_HORIZON = env.int("ENGINE_SCHEDULE_HORIZON", default=3600)
# The sweeper runs every SWEEPER_INTERVAL seconds and re-enqueues work due for longer than SWEEPER_GRACE.
SWEEPER_INTERVAL = env.float("SWEEPER_INTERVAL", default=5.0)
# Work whose job was lost, or is held by a dead scheduler, runs at most about GRACE + INTERVAL (20 s) late.
SWEEPER_GRACE = env.int("SWEEPER_GRACE", default=15)
# User templates: output and time caps (the Jinja2 sandbox does not bound work by itself).
TEMPLATE_MAX_OUTPUT = env.int("TEMPLATE_MAX_OUTPUT", default=1_000_000)
TEMPLATE_MAX_SECONDS = env.float("TEMPLATE_MAX_SECONDS", default=2.0)
# Data queries against tenants' databases.
DATA_QUERY_TIMEOUT_MS = env.int("DATA_QUERY_TIMEOUT_MS", default=10_000)
DATA_QUERY_MAX_ROWS = env.int("DATA_QUERY_MAX_ROWS", default=200_000)
DATA_QUERY_ENRICH_MAX_ROWS = env.int("DATA_QUERY_ENRICH_MAX_ROWS", default=1000)
# The publish preview (runs/publish_preview/): its time budget, the rows its blast radius reads per
# fan-out query, and the days of a database trigger's table it counts.
PUBLISH_PREVIEW_SECONDS = env.float("PUBLISH_PREVIEW_SECONDS", default=120.0)
PUBLISH_PREVIEW_BLAST_ROWS = env.int("PUBLISH_PREVIEW_BLAST_ROWS", default=20_000)
PUBLISH_PREVIEW_DAYS = env.int("PUBLISH_PREVIEW_DAYS", default=7)
PUBLISH_PREVIEW_THREADS = env.int("PUBLISH_PREVIEW_THREADS", default=2)
# The domain in Message-IDs of step emails (without it, Python looks up this host's FQDN per message).
EMAIL_MESSAGE_ID_DOMAIN = env.str("EMAIL_MESSAGE_ID_DOMAIN", default="rowbell.localhost")
# Outgoing HTTP (Slack and HTTP request steps).
HTTP_STEP_TIMEOUT = env.float("HTTP_STEP_TIMEOUT", default=15.0)
# Networks (CIDRs) that HTTP steps, Slack and event webhooks may call although they are loopback, private,
# link-local or otherwise not public (integrations/outbound.py refuses those). Empty: public addresses only.
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])

# --- Triggers (runs/listener.py, runs/webhooks.py) -----------------------------------------------------
# The listener polls each data source's event log every LISTENER_POLL_INTERVAL seconds when idle, and
# every LISTENER_BUSY_POLL_INTERVAL for LISTENER_BUSY_WINDOW seconds after it saw an event.
LISTENER_POLL_INTERVAL = env.float("LISTENER_POLL_INTERVAL", default=0.25)
LISTENER_BUSY_POLL_INTERVAL = env.float("LISTENER_BUSY_POLL_INTERVAL", default=0.01)
LISTENER_BUSY_WINDOW = env.float("LISTENER_BUSY_WINDOW", default=2.0)
# Log rows claimed (and runs started) per transaction.
LISTENER_BATCH_SIZE = env.int("LISTENER_BATCH_SIZE", default=500)
# How often the listener re-reads which data sources and workflows have published database triggers.
LISTENER_REFRESH_INTERVAL = env.float("LISTENER_REFRESH_INTERVAL", default=2.0)
# Reconnecting to a customer database that went away: exponential backoff between these bounds.
LISTENER_MIN_BACKOFF = env.float("LISTENER_MIN_BACKOFF", default=0.2)
LISTENER_MAX_BACKOFF = env.float("LISTENER_MAX_BACKOFF", default=30.0)
# Log rows of workflows not published on their data source are deleted after this many seconds.
LISTENER_ORPHAN_GRACE = env.int("LISTENER_ORPHAN_GRACE", default=60)
# ...in slices of this many rows (each sweep stops after a second and leaves the rest for the next).
LISTENER_ORPHAN_BATCH = env.int("LISTENER_ORPHAN_BATCH", default=10_000)
# Each data source is served by its own thread; these bound how long one that hangs keeps its thread: the
# server cancels a listener query after LISTENER_STATEMENT_TIMEOUT seconds (the source then reconnects),
# and stopping the listener waits at most LISTENER_SHUTDOWN_GRACE seconds for the threads.
LISTENER_STATEMENT_TIMEOUT = env.float("LISTENER_STATEMENT_TIMEOUT", default=30.0)
LISTENER_SHUTDOWN_GRACE = env.float("LISTENER_SHUTDOWN_GRACE", default=5.0)
# Any number of listener processes share the data sources: each source is leased to one for
# LISTENER_LEASE_SECONDS, renewed at every refresh; a dead listener's sources are taken over when the lease
# runs out. Each takes at most its fair share (sources / live listeners, rounded up).
LISTENER_LEASE_SECONDS = env.float("LISTENER_LEASE_SECONDS", default=10.0)
# Logical decoding: an idle slot gets a heartbeat transaction this often (see runs/listener.py).
LISTENER_SLOT_HEARTBEAT = env.float("LISTENER_SLOT_HEARTBEAT", default=10.0)
# Connecting to a tenant's database gives up after this many seconds (whole seconds, at least 2).
DATASOURCE_CONNECT_TIMEOUT = env.int("DATASOURCE_CONNECT_TIMEOUT", default=5)
# A data source may not connect to the PostgreSQL server holding Rowbell's own data, nor through a local
# socket (integrations/datasources/target.py); true allows it, for a single-team install (and the dev and
# test runners, whose customer databases share the local server).
DATA_SOURCE_ALLOW_ROWBELL_SERVER = env.bool("DATA_SOURCE_ALLOW_ROWBELL_SERVER", default=False)
# Inbound webhooks: largest accepted body, and how far the signed timestamp may be from now.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
WEBHOOK_TIMESTAMP_TOLERANCE = env.int("WEBHOOK_TIMESTAMP_TOLERANCE", default=300)
# JSON from outside (webhook and API bodies, the test page's item, a step's JSON fields) may nest at most
# this many levels; deeper is a 400 (integrations/json_input.py). Real events nest a handful of levels.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)

# --- Outbound event webhooks (runs/events/) ------------------------------------------------------------
# Seconds a POST to an endpoint may wait to connect or for each read; then it is retried.
EVENT_WEBHOOK_TIMEOUT = env.float("EVENT_WEBHOOK_TIMEOUT", default=5.0)
# Attempts before a delivery fails, with the engine's backoff (ENGINE_RETRY_*) in between.
EVENT_WEBHOOK_MAX_ATTEMPTS = env.int("EVENT_WEBHOOK_MAX_ATTEMPTS", default=10)

# --- Operations: /metrics, /healthz, /readyz (config/metrics.py, config/health.py), logs ----------------
# /metrics answers a request with `Authorization: Bearer <METRICS_TOKEN>` (empty: no token accepted), or
# from an address in METRICS_ALLOWED_NETWORKS (comma-separated; behind a proxy REMOTE_ADDR is the proxy's).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Behind a reverse proxy: how many proxies stand in front of Rowbell (1 for one nginx), and the networks
# their connections come from. Only then is X-Forwarded-For read (common/client_address.py).
PROXY_COUNT = env.int("PROXY_COUNT", default=0)
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=["127.0.0.1/32", "::1/128"])
# One request header longer than this is refused with 431 (gunicorn's own limit, config/gunicorn.py, is
# set above it so the answer is Rowbell's, in JSON under /api/ and /hooks/).
MAX_HEADER_BYTES = env.int("MAX_HEADER_BYTES", default=8190)
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
# Each PostgreSQL count of a scrape gives up after this long (the metric is then left out of that scrape).
METRICS_QUERY_TIMEOUT_MS = env.int("METRICS_QUERY_TIMEOUT_MS", default=5000)

# --- Retention (runs/retention.py) ---------------------------------------------------------------------
# Days a finished run (with its executions and messages) and a settled event delivery are kept; 0 keeps
# everything. Runs with held, sending or uncertain messages are kept whatever their age.
ACTIVITY_RETENTION_DAYS = env.int("ACTIVITY_RETENTION_DAYS", default=0)

# --- Search by payload field (runs/search_values.py) -----------------------------------------------------
# HMAC key of the searchable fields a workflow marks `hashed` (personal data): only the HMAC is stored, and a
# search hashes what is typed the same way. Changing it makes the values stored before unfindable. When
# unset, SECRET_KEY is used (so rotating SECRET_KEY has the same effect).
SEARCH_HASH_KEY = env.str("SEARCH_HASH_KEY", default="")

# --- Limits per tenant (tenants/limits.py) -------------------------------------------------------------
# Defaults for what an operator may set per tenant in the Django admin (Tenant → Limits): the engine's
# ENGINE_TENANT_CONCURRENCY and ACTIVITY_RETENTION_DAYS above, and these. A rate of 0 is no tenant-wide
# limit (a burst of 0 is one second's worth); a frequency budget of 0 messages is off.
TENANT_SEND_RATE_PER_SECOND = env.float("TENANT_SEND_RATE_PER_SECOND", default=0.0)
TENANT_SEND_RATE_BURST = env.int("TENANT_SEND_RATE_BURST", default=0)
FREQUENCY_BUDGET_MESSAGES = env.int("FREQUENCY_BUDGET_MESSAGES", default=0)
FREQUENCY_BUDGET_HOURS = env.int("FREQUENCY_BUDGET_HOURS", default=24)
# A message held for its send window is due at the window's opening plus a share of this many seconds
# fixed by its identity, so the messages held for 09:00 leave over 09:00-09:10, not all at once.
SEND_WINDOW_SPREAD_SECONDS = env.int("SEND_WINDOW_SPREAD_SECONDS", default=600)
# Each process keeps a tenant's limits this many seconds before reading them again.
LIMITS_CACHE_SECONDS = env.float("LIMITS_CACHE_SECONDS", default=5.0)
