"""clipproject.settings_production: deploy checks, required secrets, HTTPS behaviour."""

import os
import secrets
import subprocess
import sys
import textwrap

from tests.support.server import REPO_ROOT


def production_env(**overrides):
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CLIPCHECK_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update({
        "DJANGO_SETTINGS_MODULE": "clipproject.settings_production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "clip.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/7",
        "CLIPCHECK_BATCH_ROOT": str(REPO_ROOT),
        "PYTHONPATH": str(REPO_ROOT),
    })
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def run(args, env):
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_at_warning_level():
    result = run(["manage.py", "check", "--deploy", "--database", "default", "--fail-level", "WARNING"], production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing but information: clipcheck.I001 names the similarity search path (a database check).
    output = result.stdout + result.stderr
    assert "INFOS:" in output and "clipcheck.I001" in output
    assert "WARNINGS:" not in output and "ERRORS:" not in output


def test_check_deploy_flags_a_throttle_cache_the_workers_do_not_share():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(REDIS_URL=None))
    assert result.returncode != 0
    assert "clipcheck.W003" in result.stderr


def test_production_settings_refuse_to_load_without_a_secret_key():
    result = run(["manage.py", "check"], production_env(DJANGO_SECRET_KEY=None))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr
    # One line, not a traceback.
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_gunicorn_stops_with_one_line_without_a_secret_key():
    """The arbiter stops before forking: no worker boots, fails and is replaced."""
    env = production_env(DJANGO_SECRET_KEY=None, GUNICORN_CONTROL_SOCKET="")
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO_ROOT / "gunicorn.conf.py"), "clipproject.wsgi",
         "--bind", "127.0.0.1:0", "--workers", "1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert output.count("DJANGO_SECRET_KEY must be set") == 1
    assert "Traceback" not in output and "Booting worker" not in output


def test_https_is_enforced_behind_a_tls_proxy_except_for_health_probes():
    script = textwrap.dedent("""
        import django
        django.setup()
        from django.test import Client
        client = Client(HTTP_HOST="clip.example.com")
        plain = client.get("/clip/categories")
        print("plain", plain.status_code, plain.get("Location"))
        probe = client.get("/metrics")
        print("probe", probe.status_code)
        import re
        exempt = django.conf.settings.SECURE_REDIRECT_EXEMPT
        print("health-exempt", any(re.search(pattern, "clip/health") for pattern in exempt))
        secure = client.get("/clip/categories", HTTP_X_FORWARDED_PROTO="https")
        print("secure", secure.status_code, secure.get("Strict-Transport-Security"))
        print("cookies", django.conf.settings.SESSION_COOKIE_SECURE, django.conf.settings.CSRF_COOKIE_SECURE)
    """)
    result = run(["-c", script], production_env(DJANGO_SECURE_PROXY_SSL_HEADER="1"))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines["plain"] == "301 https://clip.example.com/clip/categories"
    assert lines["probe"] == "200"  # scraped over plain HTTP inside the network
    assert lines["health-exempt"] == "True"
    assert lines["secure"] == "200 max-age=31536000; includeSubDomains; preload"
    assert lines["cookies"] == "True True"
