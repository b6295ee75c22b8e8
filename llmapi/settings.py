"""The project's one settings module: every knob comes from the environment (see .env.example)."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from llmapi.env import email_settings, env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string, or set DEBUG=1 for development."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105

PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(PUBLIC_BASE_URL)
if _public.scheme not in {"http", "https"} or not _public.hostname:
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL must be an http(s) URL, not {PUBLIC_BASE_URL!r}")
PUBLIC_ORIGIN = f"{_public.scheme}://{_public.netloc}"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [_public.hostname, "localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = [PUBLIC_ORIGIN, *env_list("CSRF_TRUSTED_ORIGINS")]

INSTALLED_APPS = [
    # Daphne (first, so that `runserver` serves the ASGI application) only for that command: it
    # pulls in Twisted, some 35 MB that no production server process needs.
    *(["daphne"] if sys.argv[1:2] == ["runserver"] else []),
    "accounts.apps.StaffAdminConfig",  # django.contrib.admin, for staff with a second factor only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "django_htmx",
    "csp",
    "accounts",
    "plans",
    "keys",
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "plans.middleware.StripePagesMiddleware",  # after CSP: Stripe's hosted pages as form destinations
    # Serves the project's CSS/JS and htmx under any ASGI server (collectstatic output and, through
    # WHITENOISE_USE_FINDERS below, the app folders too, so tests and fresh checkouts need no collectstatic).
    "llmapi.static_files.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "llmapi.middleware.UnreadableFormMiddleware",  # before anything reads the form, the CSRF check included
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
WHITENOISE_USE_FINDERS = True

ROOT_URLCONF = "llmapi.urls"
ASGI_APPLICATION = "llmapi.asgi.application"

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
                "llmapi.context_processors.site",
            ],
        },
    },
]

# Database: PostgreSQL in production and tests; an SQLite file beside manage.py by default.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))}
# A PostgreSQL replica for the dashboard's usage reports (llmapi/database_router.py); unset: all on the primary.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(DATABASE_REPLICA_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0))
DATABASE_ROUTERS = ["llmapi.database_router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: limits, caches, the usage stream and Celery's broker. Unset: in-process fallbacks.
REDIS_URL = env_str("REDIS_URL")
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "llmapi")  # lets deployments (or test runs) share a Redis
REDIS_SHARDS = env_int("REDIS_SHARDS", 1)  # Redis Cluster slots the accounts are spread over (gateway/redis_keys.py)
# The gateway's own Redis (windows, usage streams, token counts) when it is not REDIS_URL's, for
# instance a Redis Cluster (gateway/redis_clients.py); REDIS_URL then keeps Celery, Channels,
# Django's cache and the invalidation channel.
GATEWAY_REDIS_URL = env_str("GATEWAY_REDIS_URL")
GATEWAY_REDIS_CLUSTER = env_bool("GATEWAY_REDIS_CLUSTER", False)
if GATEWAY_REDIS_URL and not REDIS_URL:
    raise ImproperlyConfigured("GATEWAY_REDIS_URL needs REDIS_URL too: a plain Redis for Celery, Channels, the cache")
if GATEWAY_REDIS_CLUSTER and not GATEWAY_REDIS_URL:
    raise ImproperlyConfigured("GATEWAY_REDIS_CLUSTER needs GATEWAY_REDIS_URL: a node of the cluster, or several")
if "," in GATEWAY_REDIS_URL and not GATEWAY_REDIS_CLUSTER:
    raise ImproperlyConfigured("GATEWAY_REDIS_URL lists several nodes: set GATEWAY_REDIS_CLUSTER=1, or name one Redis")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,  # allauth's rate-limit counters live here too
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Channels (the overview's live window bars, accounts/live.py): Redis pub/sub across processes, or
# in memory when there is no Redis and everything runs in one process.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}:channels"},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: JSON only, bounded tasks; eager (in process) when there is no Redis to queue on.
CELERY_BROKER_URL = REDIS_URL or "memory://"
# Every key the broker writes (queues, bindings, unacked messages) under our prefix, not only the queue's name.
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_KEY_PREFIX}:"}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A queue of our own per key prefix, so that deployments (or test runs) sharing a Redis keep apart.
CELERY_TASK_DEFAULT_QUEUE = f"{REDIS_KEY_PREFIX}-tasks"
CELERY_BEAT_SCHEDULE = {
    "drain-usage": {
        "task": "gateway.tasks.drain_usage",
        "schedule": env_float("USAGE_DRAIN_INTERVAL_SECONDS", 2.0),
        "options": {"expires": 30},  # a drain that waited this long is superseded by newer ones
    },
    "store-interrupted-usage": {
        "task": "gateway.tasks.store_interrupted_usage",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "delete-old-usage-events": {"task": "gateway.tasks.delete_old_usage_events", "schedule": 24 * 3600.0},
}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# Email: printed to the console unless EMAIL_URL says otherwise.
globals().update(email_settings(env_str("EMAIL_URL", "console://")))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"LLM API <noreply@{_public.hostname}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# API keys are stored as HMAC-SHA256 with this secret, apart from SECRET_KEY so that rotating
# SECRET_KEY never invalidates a key. To rotate it, move the current value to the front of
# API_KEY_HASH_SECRETS_OLD and set a new one: keys hashed with an old secret keep working and are
# re-hashed on their next use (docs/operations.md, "Rotating the API key hash secret").
API_KEY_HASH_SECRET = env_str("API_KEY_HASH_SECRET")
if not API_KEY_HASH_SECRET:
    if not DEBUG:
        raise ImproperlyConfigured(
            "API_KEY_HASH_SECRET is not set. Set it to a long random string, different from SECRET_KEY, "
            "and keep it: every stored API key is a hash made with it (docs/operations.md)."
        )
    API_KEY_HASH_SECRET = "development-only-api-key-hash-secret"  # noqa: S105
API_KEY_HASH_SECRETS_OLD = env_list("API_KEY_HASH_SECRETS_OLD")

# Upstream credentials are stored encrypted with these Fernet keys (gateway/credential_encryption.py): the first
# encrypts, every one decrypts, so a new key goes first and an old one stays until the credentials are re-encrypted.
UPSTREAM_SECRET_KEYS = env_list("UPSTREAM_SECRET_KEYS")
if not UPSTREAM_SECRET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "UPSTREAM_SECRET_KEYS is not set. Generate a key with: .venv/bin/python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    # Development only: a key derived from SECRET_KEY, so that a laptop needs no extra setting.
    _derived = hashlib.sha256(b"upstream credentials:" + SECRET_KEY.encode()).digest()
    UPSTREAM_SECRET_KEYS = [base64.urlsafe_b64encode(_derived).decode()]
for _key in UPSTREAM_SECRET_KEYS:
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            "UPSTREAM_SECRET_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated."
        ) from None

# The gateway (/v1).
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 32 * 1024 * 1024)
GATEWAY_CACHE_TTL_SECONDS = env_float("GATEWAY_CACHE_TTL_SECONDS", 60.0)
GATEWAY_FAILOVER_DEADLINE_SECONDS = env_float("GATEWAY_FAILOVER_DEADLINE_SECONDS", 120.0)
GATEWAY_CIRCUIT_FAILURES = env_int("GATEWAY_CIRCUIT_FAILURES", 5)
GATEWAY_CIRCUIT_OPEN_SECONDS = env_float("GATEWAY_CIRCUIT_OPEN_SECONDS", 30.0)
GATEWAY_DEFAULT_COOLDOWN_SECONDS = env_float("GATEWAY_DEFAULT_COOLDOWN_SECONDS", 30.0)
# An upstream 401 rests that credential, then it is probed again; only refusals on this many distinct
# requests within the window disable it (one refusal can be a passing fault of the provider's).
GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS = env_float("GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS", 60.0)
GATEWAY_CREDENTIAL_REFUSALS_TO_DISABLE = env_int("GATEWAY_CREDENTIAL_REFUSALS_TO_DISABLE", 3)
GATEWAY_CREDENTIAL_REFUSAL_WINDOW_SECONDS = env_float("GATEWAY_CREDENTIAL_REFUSAL_WINDOW_SECONDS", 600.0)
GATEWAY_FULL_GC_INTERVAL_SECONDS = env_float("GATEWAY_FULL_GC_INTERVAL_SECONDS", 300.0)
GATEWAY_GUARD_MULTIPLIER = env_int("GATEWAY_GUARD_MULTIPLIER", 10)
GATEWAY_LIMITER_TIMEOUT_SECONDS = env_float("GATEWAY_LIMITER_TIMEOUT_SECONDS", 1.0)
GATEWAY_LIMITER_LOG_INTERVAL_SECONDS = env_float("GATEWAY_LIMITER_LOG_INTERVAL_SECONDS", 60.0)
GATEWAY_LIMITER_CONNECTIONS = env_int("GATEWAY_LIMITER_CONNECTIONS", 4)  # pipelines in flight per process
GATEWAY_CONCURRENCY_LEASE_SECONDS = env_float("GATEWAY_CONCURRENCY_LEASE_SECONDS", 900.0)
GATEWAY_MAX_INFLIGHT_BODY_BYTES = env_int("GATEWAY_MAX_INFLIGHT_BODY_BYTES", 256 * 1024 * 1024)
KEY_CREATIONS_PER_HOUR = env_int("KEY_CREATIONS_PER_HOUR", 10)
# Failed authentication stays cheap (gateway/auth.py): bounded caches of known keys and of unknown
# hashes, a few threads of their own for key lookups, and per client address a limit on lookups
# running and waiting and on failed authentications per minute (429 after that, before any
# database query).
GATEWAY_KEY_CACHE_SIZE = env_int("GATEWAY_KEY_CACHE_SIZE", 100_000)
GATEWAY_UNKNOWN_KEY_CACHE_SIZE = env_int("GATEWAY_UNKNOWN_KEY_CACHE_SIZE", 100_000)
GATEWAY_KEY_LOOKUP_THREADS = env_int("GATEWAY_KEY_LOOKUP_THREADS", 4)
GATEWAY_KEY_LOOKUPS_PER_CLIENT = env_int("GATEWAY_KEY_LOOKUPS_PER_CLIENT", 4)
GATEWAY_KEY_LOOKUPS_WAITING_PER_CLIENT = env_int("GATEWAY_KEY_LOOKUPS_WAITING_PER_CLIENT", 64)
GATEWAY_AUTH_FAILURES_PER_MINUTE = env_int("GATEWAY_AUTH_FAILURES_PER_MINUTE", 30)

# The production web server (python -m llmapi.server; docs/operations.md): its address, workers and limits.
WEB_HOST = env_str("WEB_HOST", "127.0.0.1")  # behind nginx on the same host; a private address otherwise
WEB_PORT = env_int("WEB_PORT", 8000)
WEB_WORKERS = env_int("WEB_WORKERS", os.cpu_count() or 1)
WEB_BACKLOG = env_int("WEB_BACKLOG", 4096)
WEB_LIMIT_CONCURRENCY = env_int("WEB_LIMIT_CONCURRENCY", 10_000)  # connections per worker; beyond: 503
WEB_KEEPALIVE_SECONDS = env_int("WEB_KEEPALIVE_SECONDS", 75)  # longer than nginx's upstream keepalive_timeout
WEB_MAX_HEADER_BYTES = env_int("WEB_MAX_HEADER_BYTES", 256 * 1024)
WEB_HEADER_TIMEOUT_SECONDS = env_float("WEB_HEADER_TIMEOUT_SECONDS", 30.0)
# On SIGTERM a worker stops accepting and lets open requests (streams) finish for this long, then ends them.
WEB_GRACE_SECONDS = env_float("WEB_GRACE_SECONDS", 300.0)

# Usage: how long raw events are kept (rollups stay), when a dead drain's entries are taken over, and how many
# records a gateway process holds while Redis is away before writing them to the database itself.
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 30)
USAGE_CLAIM_IDLE_SECONDS = env_float("USAGE_CLAIM_IDLE_SECONDS", 60.0)
USAGE_MAX_DELIVERIES = env_int("USAGE_MAX_DELIVERIES", 10)  # claims of one stream entry before it is dead-lettered
# Stream entries per drain batch: a request leaves two (its admission, then its record).
USAGE_DRAIN_BATCH_SIZE = env_int("USAGE_DRAIN_BATCH_SIZE", 10_000)
USAGE_BUFFER_LIMIT = env_int("USAGE_BUFFER_LIMIT", 100_000)
# An admitted request with no record this long after it started is stored as interrupted (its
# gateway process died); longer than any answer takes, and than the in-flight lease.
USAGE_INTERRUPTED_AFTER_SECONDS = env_float("USAGE_INTERRUPTED_AFTER_SECONDS", 1800.0)
# Entries the usage stream may hold (about 500 bytes each); past it gateways write to the database instead.
USAGE_STREAM_MAX_LENGTH = env_int("USAGE_STREAM_MAX_LENGTH", 200_000)

# Accounts (allauth): email and password, no username, mandatory email verification.
# allauth's backend only: every password check, the admin's included (accounts/admin_site.py), goes
# through allauth's login with its rate limits.
AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # a link scanner fetching the mail's link must not verify the address
ACCOUNT_CHANGE_EMAIL = True  # one address per account; a new one replaces it once verified
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_SESSION_REMEMBER = None  # ask ("Remember me")
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[LLM API] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = _public.scheme
# allauth's defaults, spelled out so that nobody switches them off by accident: failed logins are
# limited per address (the account: 5 in 5 minutes, from however many clients) and per client (the TCP
# peer, or whom a TRUSTED_PROXIES proxy names: accounts/adapters.py); signups and password-reset mails
# per client (all counted in CACHES).
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "login": "30/m/ip",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
}
# A second factor (authenticator app, recovery codes) for anyone who turns it on; staff must, for the admin.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "LLM API"
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "home"

# REST API (/api/): the dashboard's own browser session (with CSRF), JSON only, one error handler.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "EXCEPTION_HANDLER": "llmapi.api_errors.api_exception_handler",
}

# Stripe: billing is off until both are set. STRIPE_API_BASE points the client at a stand-in
# (`manage.py simulate_stripe`); empty means Stripe itself.
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env_str("STRIPE_API_BASE").rstrip("/")

# Security: strict by default outside development.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _public.scheme == "https" else 0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
# Content-Security-Policy on every Django page: scripts, styles and connections (the live window bars'
# WebSocket included) from this origin only; no inline script, style or handler anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Addresses (IPs or CIDRs) of the reverse proxies in front of the web processes. Only a peer listed here
# may set the client address through X-Forwarded-For; empty, the TCP peer is the client.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# Behind a TLS-terminating proxy only: trust its X-Forwarded-Proto header.
if env_bool("TRUST_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# plain: "time LEVEL logger message" lines; json: one JSON object a line, for log shippers.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json")
# One line per /v1 request on standard error (gateway/request_log.py).
REQUEST_LOG = env_bool("REQUEST_LOG", default=True)
# GET /metrics answers a scraper sending `Authorization: Bearer <METRICS_TOKEN>`; unset, metrics are off (404).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "llmapi.logging_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"stripe": {"level": "WARNING"}},  # the library logs every request at INFO
}
