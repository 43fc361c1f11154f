"""Settings of the clipcheck service.

Everything a deploy changes comes from the environment (12-factor); the
defaults run on a fresh machine: embedded SQLite, local media, DEBUG off.
"""

import os
import warnings
from pathlib import Path

import dj_database_url

from clipcheck.settings import CLIPCHECK_TABLE
from listings.settings import LISTINGS_TABLE

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
# A fixed development key keeps a fresh checkout runnable; production settings
# (clipproject.settings_production) refuse to start without DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me-in-production")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "clipcheck",
    "listings",
]

MIDDLEWARE = [
    # First: its timing and status cover every layer below.
    "clipcheck.middleware.RequestTelemetryMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Before anything reads the body.
    "clipcheck.middleware.RequestSizeLimitMiddleware",
    "clipcheck.middleware.RequestCharsetMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "clipproject.urls"
WSGI_APPLICATION = "clipproject.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes write to one SQLite file (the server, clip_audit,
    # audit workers): writers queue for the lock (IMMEDIATE, up to 20 s)
    # instead of failing with "database is locked", and readers never block
    # writers (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    })
# clipcheck's models without a table of their own stay out of dumpdata,
# loaddata and flush (docs/operations.md#backups).
DATABASE_ROUTERS = ["clipcheck.routers.ClipcheckRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counters must be shared by every serving process: Redis when
# REDIS_URL is set (production), process memory otherwise (one process).
if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "clipcheck"),
            "OPTIONS": {
                # Fail fast when Redis is down: throttling then lets
                # requests through instead of hanging them.
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The admin is the only page people log in to: after a login (also one whose
# "next" was refused as unsafe) they land on its index, and anything asking for a
# login sends them to its form. Django's defaults, /accounts/..., are not routed.
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
# WhiteNoise serves STATIC_ROOT (after collectstatic) from the app server,
# so the admin and the offline Swagger UI work without a separate server.
# Without a collected STATIC_ROOT it serves from the apps' static folders.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", not STATIC_ROOT.is_dir())
if WHITENOISE_USE_FINDERS:
    # ...and would warn on every start that STATIC_ROOT does not exist yet.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", BASE_DIR / "media"))

# S3 (or any S3-compatible server) options of django-storages, by env name.
S3_OPTIONS_FROM_ENVIRON = {
    "endpoint_url": "AWS_S3_ENDPOINT_URL",
    "access_key": "AWS_ACCESS_KEY_ID",
    "secret_key": "AWS_SECRET_ACCESS_KEY",
    "region_name": "AWS_S3_REGION_NAME",
    "addressing_style": "AWS_S3_ADDRESSING_STYLE",
    "custom_domain": "AWS_S3_CUSTOM_DOMAIN",
    "location": "CLIPCHECK_S3_PREFIX",
}


def storages_from_environ(environ=os.environ):
    """Media in MEDIA_ROOT, or in an S3 bucket when one is named.

    ``CLIPCHECK_S3_BUCKET`` (or ``AWS_STORAGE_BUCKET_NAME``) switches the
    default storage to django-storages' S3 backend; the other AWS_* variables
    fill its options. Objects stay private: URLs are signed.
    """
    staticfiles = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    bucket = environ.get("CLIPCHECK_S3_BUCKET") or environ.get("AWS_STORAGE_BUCKET_NAME")
    if not bucket:
        return {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}, "staticfiles": staticfiles}
    options = {"bucket_name": bucket, "default_acl": None, "querystring_auth": True}
    options.update({option: environ[name] for option, name in S3_OPTIONS_FROM_ENVIRON.items() if environ.get(name)})
    if "endpoint_url" in options:
        # Self-hosted S3-compatible servers (MinIO, Ceph, ...) rarely serve
        # bucket subdomains.
        options.setdefault("addressing_style", "path")
    return {"default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}, "staticfiles": staticfiles}


STORAGES = storages_from_environ()

# Request size limits: uploads above FILE_UPLOAD_MAX_MEMORY_SIZE spool to disk;
# the per-image limit is CLIPCHECK["MAX_UPLOAD_BYTES"].
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
# DATA_UPLOAD_MAX_NUMBER_FILES follows LISTINGS["MAX_PHOTOS"] (below).

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "clipcheck.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["clipcheck.api.renderers.EncodableJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["clipcheck.api.parsers.BoundedJSONParser"],
    # Token first: its scheme is what 401 responses name in WWW-Authenticate.
    # Sessions serve the admin and same-site pages (with CSRF checks).
    # Failed tokens are throttled per client; CSRF refusals say csrf_failed.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "clipcheck.api.authentication.ThrottledTokenAuthentication",
        "clipcheck.api.authentication.CsrfSessionAuthentication",
    ],
    # Each view's access_scope policy in CLIPCHECK["ACCESS"] decides.
    "DEFAULT_PERMISSION_CLASSES": ["clipcheck.access.EndpointPolicyPermission"],
    "DEFAULT_THROTTLE_CLASSES": ["clipcheck.access.EndpointRateThrottle"],
    # Proxies in front of the app that append to X-Forwarded-For. With 0 the
    # client is REMOTE_ADDR, so a forged header cannot dodge rate limits.
    "NUM_PROXIES": int(os.environ.get("DJANGO_NUM_PROXIES", "0")),
    "DEFAULT_SCHEMA_CLASS": "clipcheck.api.schema.ClipAutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "clipcheck API",
    "DESCRIPTION": "Checks product images against their titles and descriptions with CLIP.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Multipart uploads get their own request components (binary file fields).
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the installed sidecar package: no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several responses have a "status" field with its own choices.
    "ENUM_NAME_OVERRIDES": {"ListingStatusEnum": "listings.models.Listing.Status"},
}

# Refused CSRF checks outside DRF views answer in the one JSON error format too.
CSRF_FAILURE_VIEW = "clipcheck.api.exceptions.json_csrf_failure"

# Cross-origin calls from the storefront's own origins; none by default.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
# Response headers a browser script may read besides the CORS-safelisted
# ones: when to retry (429/503), the request id to quote, the auth scheme.
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID", "WWW-Authenticate"]


def _clipcheck_from_environ():
    """The CLIPCHECK keys the environment overrides, as their declarations say
    (``CLIPCHECK_TABLE``: ``CLIPCHECK_<KEY>``, docs/configuration.md#environment-variables).

    Values that don't parse are passed through unchanged so that the system
    checks (clipcheck.E0xx) report them instead of a crash at import.
    """
    return CLIPCHECK_TABLE.environ_overrides(os.environ)


def _listings_from_environ():
    """The LISTINGS keys the environment overrides (``LISTINGS_TABLE``: ``LISTINGS_<KEY>``)."""
    return LISTINGS_TABLE.environ_overrides(os.environ)


CLIPCHECK = {
    "BATCH_ROOT": str(BASE_DIR / "var" / "batch"),
    "RUNTIME_CACHE_DIR": str(BASE_DIR / "var" / "runtime"),
    # Policies of this project's own views, merged into clipcheck's table.
    # POST /upload stores what it receives: only users allowed to add listings.
    # POST /clip/search shows what the catalogue holds: only users allowed to
    # view listings (anonymous storefront search is a project's choice).
    "ACCESS": {
        "upload": {"anonymous": False, "permissions": ["listings.add_listing"], "rate": "30/minute"},
        "search": {"anonymous": False, "permissions": ["listings.view_listing"], "rate": "60/minute"},
        # A seller's statements of reasons and appeals: any signed-in user; the view answers 404 for a
        # listing that is not theirs (staff read every listing's statements).
        "listing-statements": {"anonymous": False, "permissions": [], "rate": "60/minute"},
        "listing-appeal": {"anonymous": False, "permissions": [], "rate": "10/minute"},
    },
    **_clipcheck_from_environ(),
}

# The listings app's settings (listings/settings.py declares the keys).
LISTINGS = _listings_from_environ()
# POST /upload takes up to MAX_PHOTOS photos in one request, and Django refuses a
# request with more files than this before any view runs (listings.W001 warns
# when the two disagree).
# A MAX_PHOTOS that is not a positive integer is reported by listings.E003.
_max_photos = LISTINGS.get("MAX_PHOTOS")
DATA_UPLOAD_MAX_NUMBER_FILES = _max_photos if isinstance(_max_photos, int) and _max_photos > 0 else (
    LISTINGS_TABLE.setting("MAX_PHOTOS").default
)

# Celery: the distributed mode of clip_audit (docs/audit.md). Workers:
#   celery -A clipproject worker -Q clip --concurrency 1 --prefetch-multiplier 1
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
# A chunk is acknowledged once its results are committed; a worker that dies
# (even SIGKILL) leaves it unacknowledged, and the broker delivers it again.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One process per worker by default: each process holds its own model.
CELERY_WORKER_CONCURRENCY = int(os.environ.get("CELERY_WORKER_CONCURRENCY", "1"))
CELERY_TASK_ROUTES = {"listings.audit_chunk": {"queue": "clip"}}
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Seconds before Redis hands an unacknowledged chunk to another worker: it
# must exceed the longest chunk, and is how long the chunk of a worker
# killed outright waits to be redone.
_visibility_timeout = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
# Prefixes every Redis key (queues and results) so that several deployments
# can share one Redis database.
_key_prefix = os.environ.get("CELERY_KEY_PREFIX", "")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout,
    # Look for abandoned chunks about ten times per visibility timeout.
    "unacked_restore_interval": max(1, min(60, _visibility_timeout // 10)),
    "unacked_restore_throttle": 1,
    # A worker killed during a sweep leaves its lock behind this long.
    "unacked_mutex_expire": max(5, min(300, _visibility_timeout)),
    **({"global_keyprefix": _key_prefix} if _key_prefix else {}),
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": _key_prefix} if _key_prefix else {}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # The request log lines are JSON documents already.
        "bare": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "request_log": {"class": "logging.StreamHandler", "formatter": "bare", "stream": "ext://sys.stdout"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        # One JSON line per request (clipcheck.middleware.RequestTelemetryMiddleware);
        # DJANGO_REQUEST_LOG_LEVEL=WARNING turns it off.
        "clipcheck.requests": {
            "handlers": ["request_log"],
            "level": os.environ.get("DJANGO_REQUEST_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}
