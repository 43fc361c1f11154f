"""Nothing half-made survives a crash mid-upload: what is left is swept by clip_sweep_orphans."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from clipcheck.models import Analysis
from listings.sweep import orphans_sweep
from tests.support.images import image_bytes
from tests.support.server import REPO_ROOT, GunicornServer, multipart, unique_picture

pytestmark = pytest.mark.django_db


def stored_file(name, *, hours_old):
    name = default_storage.save(name, ContentFile(image_bytes()))
    moment = time.time() - hours_old * 3600
    os.utime(default_storage.path(name), (moment, moment))
    return name


def backdate(analysis, hours):
    Analysis.objects.filter(pk=analysis.pk).update(created_at=analysis.created_at - timedelta(hours=hours))


def upload_analysis(**fields):
    from clipcheck.services.analyses import analysis_build

    result = {"similarity_score": 0.3, "threshold_used": 0.25, "is_mismatch": False, "confidence": "low",
              "match_quality": "good"}
    analysis = analysis_build(image_sha256="0" * 64, text="red", result=result, model="m", device="cpu",
                              source=fields.pop("source", Analysis.Source.UPLOAD), duration_ms=1.0, **fields)
    analysis.save()
    return analysis


def test_old_orphans_are_removed_and_everything_else_is_kept(make_listing):
    listing = make_listing()
    os.utime(default_storage.path(listing.image.name), (0, 0))  # old, but named by a listing
    old_orphan = stored_file("listings/old-orphan.png", hours_old=48)
    recent_orphan = stored_file("listings/recent-orphan.png", hours_old=1)
    unrelated = stored_file("elsewhere/old.png", hours_old=48)
    orphan_analysis, recent_analysis = upload_analysis(), upload_analysis()
    linked_analysis, api_analysis = upload_analysis(subject=listing), upload_analysis(source=Analysis.Source.API)
    for analysis in (orphan_analysis, linked_analysis, api_analysis):
        backdate(analysis, 48)

    result = orphans_sweep(grace=timedelta(hours=24))

    assert result.files == [old_orphan]
    assert (result.analyses, result.files_kept_recent) == (1, 1)
    assert not default_storage.exists(old_orphan)
    assert all(default_storage.exists(name) for name in (listing.image.name, recent_orphan, unrelated))
    assert set(Analysis.objects.values_list("pk", flat=True)) == {
        recent_analysis.pk, linked_analysis.pk, api_analysis.pk
    }


def test_the_command_dry_run_removes_nothing(make_listing):
    orphan = stored_file("listings/orphan.png", hours_old=30)
    output = _call("--grace-hours", "24", "--dry-run")
    assert f"Would remove {orphan}" in output and default_storage.exists(orphan)
    output = _call("--grace-hours", "24")
    assert "Removed 1 orphan image file(s)" in output and not default_storage.exists(orphan)


@pytest.mark.parametrize("hours", ["-1", "soon", "nan"])
def test_the_grace_period_must_be_hours(hours):
    with pytest.raises(CommandError, match="--grace-hours"):
        _call("--grace-hours", hours)


def _call(*args):
    from io import StringIO

    out = StringIO()
    call_command("clip_sweep_orphans", *args, stdout=out)
    return out.getvalue()


# A worker killed by SIGKILL in the middle of an upload, on a real server,
# on the suite's database backend (SQLite, or PostgreSQL when DATABASE_URL
# names one, as in CI's second run).

class ServerDatabase:
    """The server's own database: a SQLite file, or a PostgreSQL database
    created beside the one DATABASE_URL names and dropped afterwards."""

    def __init__(self, directory):
        self.url = os.environ.get("DATABASE_URL", "")
        self.postgres = self.url.startswith(("postgres://", "postgresql://"))
        if self.postgres:
            import psycopg

            self.name = f"clipcheck_orphans_{os.getpid()}"
            # The maintenance database: the one DATABASE_URL names need not exist
            # (pytest-django only creates its test_ copy).
            base = self.url.rsplit("/", 1)[0]
            self.admin = psycopg.connect(f"{base}/postgres", autocommit=True)
            self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
            self.admin.execute(f'CREATE DATABASE "{self.name}"')
            self.server_url = f"{base}/{self.name}"
        else:
            self.path = directory / "db.sqlite3"
            self.server_url = f"sqlite:///{self.path}"

    def rows(self, query):
        if self.postgres:
            import psycopg

            with psycopg.connect(self.server_url) as connection:
                return connection.execute(query).fetchall()
        connection = sqlite3.connect(self.path)
        try:
            return connection.execute(query).fetchall()
        finally:
            connection.close()

    def drop(self):
        if self.postgres:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.close()


@pytest.mark.server
def test_a_worker_killed_mid_upload_leaves_only_a_file_which_the_sweep_removes(tmp_path, tiny_model_dir):
    media = tmp_path / "server" / "media"
    (tmp_path / "server").mkdir()
    database = ServerDatabase(tmp_path / "server")
    env = {
        "DATABASE_URL": database.server_url,
        "DJANGO_MEDIA_ROOT": str(media),
        "CLIPCHECK_TEST_ACCESS": json.dumps({"upload": {"anonymous": True, "permissions": [], "rate": None}}),
        "CLIPCHECK_THRESHOLD": "0.0",
    }
    try:
        with GunicornServer(tmp_path / "server", model=tiny_model_dir, env=env, workers=1) as server:
            server.start()
            assert upload(server).status == 201  # a normal upload is stored whole
            server.set_fault("stored 60")
            outcome = []
            request = threading.Thread(target=lambda: outcome.append(_upload_or_error(server)))
            request.start()
            deadline = time.monotonic() + 60
            while not server.busy_workers() and time.monotonic() < deadline:
                time.sleep(0.05)
            [worker] = server.busy_workers()
            os.kill(worker, signal.SIGKILL)  # after the image was written, before the transaction
            request.join(30)
            server.set_fault("")
            assert outcome and outcome[0] != 201

            files = sorted(path.name for path in (media / "listings").iterdir())
            listed = [row[0] for row in database.rows("SELECT image FROM listings_listing")]
            [(unlinked,)] = database.rows(
                "SELECT COUNT(*) FROM clipcheck_analysis WHERE source = 'upload' AND subject_id = ''"
            )
            assert len(files) == 2 and len(listed) == 1  # the killed upload's file, and nothing else of it
            assert unlinked == 0  # its analyses were never committed without their listing
            [orphan] = [name for name in files if f"listings/{name}" not in listed]

            swept = sweep(server, "--grace-hours", "0")
            assert f"Removed listings/{orphan}" in swept
            assert sorted(path.name for path in (media / "listings").iterdir()) == [listed[0].split("/")[-1]]
    finally:
        database.drop()


def upload(server):
    body, headers = multipart({"title": "red", "description": "red"},
                              [("file", "a.png", unique_picture(), "image/png")])
    return server.request("POST", "/upload", body, {**headers, "Connection": "close"}, timeout=90)


def _upload_or_error(server):
    try:
        return upload(server).status
    except OSError as exc:
        return exc


def sweep(server, *args):
    completed = subprocess.run(
        [sys.executable, "manage.py", "clip_sweep_orphans", *args], cwd=REPO_ROOT, env=server.env,
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout
