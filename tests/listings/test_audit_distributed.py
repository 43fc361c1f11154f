"""clip_audit --distributed with a real Redis broker and real Celery worker processes.

Everything runs in subprocesses against one SQLite file (the workers must
see the same database), on Redis database 5 under a key prefix of its own,
so nothing collides with other users of the same Redis.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/5"
# The server the PostgreSQL variant creates its database on.
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
LISTINGS = 40

pytestmark = [pytest.mark.redis, pytest.mark.celery]


@pytest.fixture
def database_url(request, tmp_path):
    """A SQLite file by default; a PostgreSQL database of its own for ``postgresql``."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite3'}"
        return
    import psycopg

    name = f"clipcheck_audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def deployment(tmp_path, tiny_model_dir, database_url):
    """Environment of a deployment: its own database, media and broker key prefix."""
    prefix = f"clipcheck-test-{uuid.uuid4().hex[:12]}:"
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "CLIPCHECK_MODEL": tiny_model_dir,
        "CLIPCHECK_DEVICE": "cpu",
        "CLIPCHECK_NUM_THREADS": "1",
        "CLIPCHECK_BATCH_ROOT": str(tmp_path),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_KEY_PREFIX": prefix,
        # A worker killed outright leaves its chunk unacknowledged; Redis
        # hands it to another worker after this many seconds.
        "CELERY_VISIBILITY_TIMEOUT": "4",
        "AUDIT_TEST_PAUSE_MARKER": str(tmp_path / "paused-worker"),
    }
    manage(environ, "migrate", "-v", "0")
    manage(environ, "clip_seed_demo", "--count", str(LISTINGS), "--seed", "7")
    yield environ
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def manage(environ, *arguments, timeout=120):
    finished = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=timeout,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout


@pytest.fixture
def start_worker(deployment, tmp_path):
    workers, logs = [], []

    def start(name):
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "tests.listings.audit_worker_app", "worker", "-Q", "clip",
                "--concurrency", "1", "-P", "prefork", "--loglevel", "INFO", "-n", f"{name}@%h", "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT, env=deployment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    for log in logs:
        log.close()


def wait_for(path, *, timeout):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)
    return path.read_text()


def query(environ, sql):
    url = environ["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url) as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]


def summary_value(output, label):
    for line in output.splitlines():
        if line.strip().startswith(label):
            return line.split()[-1]
    raise AssertionError(f"{label!r} is not in the summary:\n{output}")


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_two_workers_finish_an_audit_when_one_is_killed_mid_chunk(deployment, start_worker):
    workers = {"first": start_worker("first"), "second": start_worker("second")}
    command = subprocess.Popen(
        [
            sys.executable, "manage.py", "clip_audit", "--distributed", "--no-progress",
            "--chunk-size", "8", "--batch-size", "4",
        ],
        cwd=ROOT, env=deployment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    # One worker has done its first chunk's model work and is about to commit.
    paused_pid = int(wait_for(Path(deployment["AUDIT_TEST_PAUSE_MARKER"]), timeout=120))
    killed = next(worker for worker in workers.values() if worker.pid == paused_pid)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    survivor = next(worker for worker in workers.values() if worker is not killed)

    output, errors = command.communicate(timeout=180)

    assert command.returncode == 0, output + errors
    assert survivor.poll() is None
    per_listing = query(deployment, """
        SELECT l.id, COUNT(a.id), SUM(CASE WHEN a.text = l.title THEN 1 ELSE 0 END),
               SUM(CASE WHEN a.text = l.description THEN 1 ELSE 0 END)
        FROM listings_listing l LEFT JOIN clipcheck_analysis a
          ON a.subject_id = CAST(l.id AS TEXT) AND a.source = 'audit'
        GROUP BY l.id
    """)
    assert len(per_listing) == LISTINGS
    assert all(row[1:] == (2, 1, 1) for row in per_listing), per_listing
    assert query(deployment, "SELECT COUNT(*), COUNT(DISTINCT checked_model) FROM listings_listing "
                             "WHERE checked_at IS NOT NULL AND checked_model != ''") == [(LISTINGS, 1)]
    assert "5 chunk(s), 40 listing(s) sent to the 'clip' queue" in output
    assert summary_value(output, "checked") == str(LISTINGS)
    assert summary_value(output, "failed") == "0"
    assert float(summary_value(output, "throughput (images/s)")) > 0

    # A second audit finds nothing to do: no chunk is sent.
    again = manage(deployment, "clip_audit", "--distributed", "--no-progress", "--status", "all")
    assert "0 chunk(s), 0 listing(s)" in again and summary_value(again, "skipped (up to date)") == str(LISTINGS)


def test_no_wait_sends_the_chunks_and_names_the_audit(deployment):
    output = manage(deployment, "clip_audit", "--distributed", "--no-wait", "--chunk-size", "16")

    assert "Audit " in output and "3 chunk(s), 40 listing(s) sent to the 'clip' queue" in output
    assert "Audit summary" not in output
    queued = redis.Redis.from_url(REDIS_URL).llen(f"{deployment['CELERY_KEY_PREFIX']}clip")
    assert queued == 3


def test_an_unreachable_broker_is_a_clear_error(deployment):
    environ = {**deployment, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "CELERY_RESULT_BACKEND": "redis://127.0.0.1:1/0"}

    finished = subprocess.run(
        [sys.executable, "manage.py", "clip_audit", "--distributed"], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=120,
    )

    assert finished.returncode != 0
    assert "The Celery broker 'redis://127.0.0.1:1/0' cannot be reached" in finished.stderr
    assert query(deployment, "SELECT COUNT(*) FROM clipcheck_analysis") == [(0,)]
