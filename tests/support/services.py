"""The services some tests need, and what happens when one is missing.

A test that needs a service carries its marker (``redis``, ``postgres``,
``celery``, ``browser``; see pytest.ini). Before it runs, the service is
probed once per session: when it is missing the test is skipped with a
message on a developer's machine, and fails under CI (``CI`` set), where
every service must be there.
"""

import os
import socket
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.browser import CHROMIUM

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PROBE_TIMEOUT_SECONDS = 2.0

# Tests that use these fixtures need the service without saying so.
FIXTURE_SERVICES = {"browser_page": "browser"}


def is_ci(environ=os.environ):
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _redis_answers(url):
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=PROBE_TIMEOUT_SECONDS) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _postgres_answers(url):
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=int(PROBE_TIMEOUT_SECONDS)):
            return True
    except Exception:  # driver missing, refused, authentication: not usable either way
        return False


def _importable(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


PROBES = {
    "redis": (lambda: _redis_answers(REDIS_URL), f"Redis at {REDIS_URL}"),
    "postgres": (lambda: _postgres_answers(POSTGRES_URL), f"PostgreSQL at {POSTGRES_URL}"),
    # The suite starts its own workers: they need Celery and the Redis broker.
    "celery": (lambda: _importable("celery") and _redis_answers(REDIS_URL), f"Celery's Redis broker at {REDIS_URL}"),
    "browser": (lambda: Path(CHROMIUM).exists(), f"Chromium at {CHROMIUM}"),
}


@cache
def service_available(name):
    probe, _ = PROBES[name]
    return bool(probe())


def database_is_postgres():
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")


def services_mark(items):
    """Adds the service markers a test implies: a browser fixture, or the
    database when the suite runs on PostgreSQL."""
    on_postgres = database_is_postgres()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, service in FIXTURE_SERVICES.items():
            if fixture in names:
                item.add_marker(service)
        if on_postgres and item.get_closest_marker("django_db"):
            item.add_marker("postgres")


def missing_services(item, available=service_available):
    return [name for name in PROBES if item.get_closest_marker(name) and not available(name)]


def services_require(item, *, available=service_available, environ=os.environ):
    """Skip (developer machine) or fail (CI) a test whose services are missing."""
    missing = missing_services(item, available)
    if not missing:
        return
    what = ", ".join(PROBES[name][1] for name in missing)
    if is_ci(environ):
        pytest.fail(f"CI runs every test: {what} not reachable.", pytrace=False)
    pytest.skip(f"needs {what} (not reachable here; CI runs it). Start it, or deselect with -m 'not {missing[0]}'.")
