"""Production settings: the base settings plus HTTPS-only cookies, HSTS and
an SSL redirect. Select with ``DJANGO_SETTINGS_MODULE=clipproject.settings_production``.

Behind a TLS-terminating proxy set ``DJANGO_SECURE_PROXY_SSL_HEADER=1`` (the
proxy must set X-Forwarded-Proto and strip it from clients), so Django
knows which requests arrived over HTTPS. ``manage.py check --deploy``
passes with the variables of docs/deployment.md set.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from clipproject.settings import *  # noqa: F403
from clipproject.settings import env_bool, env_list

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY.strip():
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set in production (e.g. python -c "
        "'from django.core.management.utils import get_random_secret_key as k; print(k())')."
    )

DEBUG = False
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Load balancers probe health and Prometheus scrapes over plain HTTP inside
# the network; they must not be redirected.
SECURE_REDIRECT_EXEMPT = [r"^clip/health$", r"^metrics$"]

SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
