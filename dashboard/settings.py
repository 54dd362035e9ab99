"""Settings for the Coalesce refresh dashboard.

Everything that differs between a laptop and production comes from environment variables,
read through the small helpers below. Each helper fails loudly on a value it cannot parse,
and every secret also accepts a NAME_FILE variant (a path whose contents are the value), so
secrets can come from a mounted file instead of the process environment.

Nothing insecure has a default: outside DEBUG, a missing SECRET_KEY or
CREDENTIALS_ENCRYPTION_KEYS is reported by a system check (runs.checks) before the first
request is served. Every variable is documented in README.md and .env.example.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """The variable's value, or the contents of the file NAME_FILE points to."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        if name in os.environ:
            raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
        try:
            return Path(file_path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_path}: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: str = "false") -> bool:
    value = env_str(name, default).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name: str, default: str) -> int:
    value = env_str(name, default).strip()
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG")

# Left empty when unset; runs.checks turns that into a startup error outside DEBUG.
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and DEBUG:
    # Only a DEBUG process may run without a configured key, and it gets a random one
    # rather than a guessable constant (sessions then end at each restart).
    from django.core.management.utils import get_random_secret_key

    SECRET_KEY = get_random_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "csp",
    "mozilla_django_oidc",
    "runs",
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
    "csp.middleware.CSPMiddleware",
    "runs.middleware.NoStoreMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "runs.api.middleware.json_errors",
    # Last, as django-axes asks: it turns a lockout raised during login into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"

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
                "runs.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "dashboard.wsgi.application"

# SQLite by default so `make run` needs nothing installed; DATABASE_URL switches to
# PostgreSQL (postgres://user:pass@host:5432/name), the production database.
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
    # The run page's poll prepares its three statements (runs.prepared) on their second run in
    # a connection; no other query is prepared. Behind a pooler in transaction mode
    # without prepared statement support (PgBouncer before 1.21), set this to false.
    if env_bool("DATABASE_PREPARED_STATEMENTS", "true"):
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 1)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # The web server and the worker write to the same file: wait for the lock
            # instead of failing, and take it up front so two writers never deadlock.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            # One connection per worker thread, kept between requests: opening the file
            # and setting it up again for every request cost more than the polled
            # fragment's one query (bench/status.py).
            "CONN_MAX_AGE": 60,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Single sign-on (OpenID Connect, runs.sso) and local passwords ---
# OIDC_ISSUER turns single sign-on on; its endpoints come from the issuer's discovery
# document. LOCAL_LOGIN=false turns password login off for everyone (break glass: set it
# back to true and log in as a local superuser, see README).
OIDC_ISSUER = env_str("OIDC_ISSUER").strip().rstrip("/")
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")


def _group_map(text: str) -> dict[str, list[str]]:
    """OIDC_GROUP_MAP: a JSON object, identity-provider group -> Django group name(s), or
    "is_staff" / "is_superuser"."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"OIDC_GROUP_MAP is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("OIDC_GROUP_MAP must be a JSON object.")
    mapping = {}
    for group, targets in raw.items():
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
            raise ImproperlyConfigured(f"OIDC_GROUP_MAP[{group!r}] must be a group name or a "
                                       "list of them.")
        mapping[str(group)] = targets
    return mapping


OIDC_GROUP_MAP = _group_map(env_str("OIDC_GROUP_MAP"))
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", "true")
if OIDC_ISSUER and not (OIDC_CLIENT_ID and OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET.")
# What mozilla-django-oidc reads under its own names.
OIDC_RP_CLIENT_ID, OIDC_RP_CLIENT_SECRET = OIDC_CLIENT_ID, OIDC_CLIENT_SECRET
OIDC_RP_SIGN_ALGO, OIDC_RP_SCOPES = "RS256", OIDC_SCOPES
OIDC_AUTHENTICATE_CLASS = "runs.sso.DiscoveringAuthenticationRequestView"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out account or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    *(["runs.sso.GroupMappingOIDCBackend"] if OIDC_ISSUER else []),
    # Django's password backend with a cheaper user lookup per request (runs.auth_backends).
    *(["runs.auth_backends.ModelBackend"] if LOCAL_LOGIN else []),
]

# --- Login protection (django-axes) ---
# After LOGIN_FAILURE_LIMIT failures, the account AND, separately, the client address are
# locked for LOGIN_LOCKOUT_MINUTES (counted per account and per address, so one address
# trying many names and many addresses trying one name are both stopped). Admins unlock
# from the admin (Axes > Access attempts: delete the entry).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# The address as TRUSTED_PROXY_COUNT says, the same one the audit log records.
AXES_CLIENT_IP_CALLABLE = "runs.http.client_ip"
AXES_LOCKOUT_CALLABLE = "runs.sso_views.locked_out"
# Our audit log records logins; axes' own per-login log would be a second copy.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# One date format everywhere, the admin's included (dashboard/formats/en/formats.py).
FORMAT_MODULE_PATH = ["dashboard.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security: on unless DEBUG, so `check --deploy` is clean in production. ---
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", "false" if DEBUG else "true")
# Turning preload off is a deliberate choice (an internal host may never be preloaded), so
# the deploy check's reminder about it is silenced then.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD or DEBUG else ["security.W021"]
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", "false" if DEBUG else "true")
# Behind a TLS-terminating proxy, set SECURE_PROXY_SSL_HEADER=true so Django trusts
# X-Forwarded-Proto (only when the proxy overwrites that header).
if env_bool("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes and scrapers inside the network may speak plain http to these.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# No script reads the CSRF cookie: htmx gets the token from base.html's hx-headers and
# forms from their hidden field, so the cookie can be hidden from scripts.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", str(8 * 60 * 60))
# Database sessions, read with one fixed statement (runs.sessions): the run page's poll.
SESSION_ENGINE = "runs.sessions"
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts and styles only from our own origin, no
# inline code anywhere, the Django admin included (its scripts are files). htmx would
# inject an inline <style> for its indicators; base.html turns that off with htmx-config.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Number of proxies in front of the app that append to X-Forwarded-For; 0 means use
# REMOTE_ADDR. The run record and audit log store the client IP this setting yields.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", "0")

# Optional key for the audit log's hash chain (runs.audit), kept outside the database:
# with it, database access alone is not enough to rewrite the chain unnoticed.
AUDIT_HMAC_KEY = env_str("AUDIT_HMAC_KEY")

# --- Credentials and Coalesce ---
# Comma-separated "keyid:base64key" pairs, newest first. Never derived from SECRET_KEY,
# so rotating SECRET_KEY cannot make stored credentials unreadable. Parsed and checked by
# runs.encryption / runs.checks.
CREDENTIALS_ENCRYPTION_KEYS = env_str("CREDENTIALS_ENCRYPTION_KEYS")
# Hosts, besides the official regional ones, that a profile's base URL may point at
# (PrivateLink or SSO subdomains), e.g. "acme.app.eu.coalescesoftware.io".
COALESCE_ALLOWED_HOSTS = env_list("COALESCE_ALLOWED_HOSTS")
# Plain http to a loopback host: only for the local simulator and tests.
COALESCE_ALLOW_INSECURE_LOOPBACK = env_bool("COALESCE_ALLOW_INSECURE_LOOPBACK")
# (connect, read) seconds for every Coalesce call.
COALESCE_CONNECT_TIMEOUT = env_int("COALESCE_CONNECT_TIMEOUT", "5")
COALESCE_READ_TIMEOUT = env_int("COALESCE_READ_TIMEOUT", "30")

# Background work (following runs in Coalesce) goes through Django's tasks API. The
# database backend needs nothing but the database; `manage.py db_worker` runs the tasks.
# Moving to Django 6's django.tasks or another backend (RQ) is a change here only.
TASKS = {
    "default": {
        "BACKEND": env_str("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}
# How often the sweep refreshes the runs that are not finished, and when it gives up.
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", "10")
SWEEP_MAX_AGE_HOURS = env_int("SWEEP_MAX_AGE_HOURS", "48")
# Node results of a running run are fetched only while someone has its page open, at most
# once per sweep and run, and at most this many such calls per environment per sweep.
SWEEP_LIVE_RESULTS_PER_ENVIRONMENT = env_int("SWEEP_LIVE_RESULTS_PER_ENVIRONMENT", "5")
# The run form asks the worker to refresh an environment's node list older than this.
NODE_CATALOGUE_MAX_AGE_SECONDS = env_int("NODE_CATALOGUE_MAX_AGE_SECONDS", "3600")

# --- The JSON API and links in messages ---
# Requests per minute per personal access token; more get a 429 with Retry-After.
API_REQUESTS_PER_MINUTE = env_int("API_REQUESTS_PER_MINUTE", "120")
# The dashboard's public address (https://refresh.example.com), for links to run pages in
# API answers and notifications; empty means "the host the request came to".
SITE_URL = env_str("SITE_URL").rstrip("/")

# --- Notifications ---
# Plain http to loopback addresses for webhooks: tests and local development only.
WEBHOOK_ALLOW_LOOPBACK = env_bool("WEBHOOK_ALLOW_LOOPBACK")
# Email goes through Django's SMTP backend with Django's own setting names.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", "25")
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "refresh-dashboard@localhost")

# The bearer token a Prometheus scraper sends to /metrics; unset, /metrics answers 404.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# "plain" (one readable line per record) or "json" (one JSON object per line).
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub_secrets": {"()": "runs.redaction.ScrubSecretsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "runs.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["scrub_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Replace Django's default handlers for its own loggers (an unfiltered console and
    # mail_admins), so every record, request errors included, passes the scrubber.
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # django-axes logs every failed login; the audit log has them, collapsed, and
        # runs.signals logs each lockout once.
        "axes": {"level": "ERROR"},
    },
}
DEFAULT_EXCEPTION_REPORTER_FILTER = "runs.redaction.SecretsExceptionReporterFilter"
