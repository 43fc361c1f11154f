"""manage.py clip_audit on one machine, and the chunk function the workers run."""

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection

from clipcheck.models import Analysis, ImageEmbedding
from clipcheck.services.thresholds import model_id
from listings import services
from listings.audit import distributed, local, records
from listings.models import Listing, ListingCheckFailure
from tests.support.clip_settings import set_clip_settings
from tests.support.listings import MATCHING_TEXT, MISMATCHING_TEXT

pytestmark = pytest.mark.django_db

Status = Listing.Status
ROOT = Path(__file__).resolve().parents[2]


def run_audit(*args):
    """The command's stdout; it raises what the command raises."""
    out, err = io.StringIO(), io.StringIO()
    call_command("clip_audit", *args, stdout=out, stderr=err)
    return out.getvalue()


def summary_value(output, label):
    for line in output.splitlines():
        if line.strip().startswith(label):
            return line.split()[-1]
    raise AssertionError(f"{label!r} is not in the summary:\n{output}")


@pytest.fixture
def catalogue(make_listing):
    """``n`` listings with distinct pictures and texts, in pk order."""

    def make(count, *, texts="audited item", **fields):
        return [
            make_listing(
                title=f"{texts} {n}", description=f"description of {texts} {n}", color=(n * 9 % 256, 40, 200), **fields
            )
            for n in range(count)
        ]

    return make


def audit_analyses(listing):
    return Analysis.objects.filter(source="audit", subject_id=str(listing.pk)).order_by("id")


def assert_checked_once(listings):
    for listing in listings:
        analyses = audit_analyses(listing)
        assert [analysis.text for analysis in analyses] == [listing.title, listing.description], listing.pk
        listing.refresh_from_db()
        assert listing.checked_at is not None and listing.checked_model == model_id()


# What is audited


def test_pending_and_approved_listings_are_audited_by_default(make_listing, everything_matches):
    audited = [make_listing(status=Status.PENDING), make_listing(status=Status.APPROVED, color=(1, 1, 1))]
    left = [make_listing(status=Status.NEEDS_REVIEW, color=(2, 2, 2)), make_listing(status=Status.REJECTED, color=(3, 3, 3))]

    output = run_audit("--no-progress")

    assert_checked_once(audited)
    assert all(not audit_analyses(listing).exists() for listing in left)
    assert summary_value(output, "checked") == "2"


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--status", "needs_review"], {"needs_review"}),
    (["--status", "needs_review", "--status", "rejected"], {"needs_review", "rejected"}),
    (["--status", "rejected,pending"], {"rejected", "pending"}),
    (["--status", "all"], {"pending", "approved", "needs_review", "rejected"}),
])
def test_the_status_option_picks_the_listings(make_listing, nothing_matches, arguments, expected):
    listings = {
        status: make_listing(status=status, color=(index, 0, 0)) for index, status in enumerate(Status.values)
    }

    run_audit("--no-progress", *arguments)

    assert {status for status, listing in listings.items() if audit_analyses(listing).exists()} == expected


def test_since_keeps_listings_created_or_updated_since_then(catalogue):
    old, edited_lately, new = catalogue(3)
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    Listing.objects.filter(pk=old.pk).update(created_at=long_ago, updated_at=long_ago)
    Listing.objects.filter(pk=edited_lately.pk).update(created_at=long_ago)

    run_audit("--no-progress", "--since", "2024-06-01")

    assert [audit_analyses(listing).count() for listing in (old, edited_lately, new)] == [0, 2, 2]


def test_limit_checks_at_most_that_many_and_a_rerun_takes_the_next(catalogue, everything_matches):
    listings = catalogue(5)

    run_audit("--no-progress", "--limit", "2", "--chunk-size", "1")
    assert [audit_analyses(listing).count() for listing in listings] == [2, 2, 0, 0, 0]

    output = run_audit("--no-progress", "--limit", "2")
    assert [audit_analyses(listing).count() for listing in listings] == [2, 2, 2, 2, 0]
    assert (summary_value(output, "checked"), summary_value(output, "skipped")) == ("2", "2")


def test_the_threshold_option_decides_the_verdicts(catalogue):
    listings = catalogue(2)

    output = run_audit("--no-progress", "--threshold", "1")

    analyses = Analysis.objects.filter(source="audit")
    assert analyses.count() == 4 and {(a.threshold, a.verdict) for a in analyses} == {(1.0, "mismatch")}
    assert {listing.status for listing in Listing.objects.all()} == {Status.NEEDS_REVIEW}
    assert summary_value(output, "flagged") == "2"
    assert "threshold 1" in output
    assert len(listings) == 2


def test_a_dry_run_prints_verdicts_and_writes_nothing(catalogue, everything_matches):
    listings = catalogue(3)
    broken = listings[0]
    broken.image.storage.delete(broken.image.name)

    output = run_audit("--no-progress", "--dry-run")

    assert Analysis.objects.count() == 0
    assert ImageEmbedding.objects.count() == 0
    assert ListingCheckFailure.objects.count() == 0
    assert set(Listing.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert not Listing.objects.filter(checked_at__isnull=False).exists()
    assert f"#{listings[1].pk} title " in output and "status pending -> approved" in output
    assert f"#{broken.pk} failed: image_unavailable" in output
    assert "dry run, nothing written" in output
    assert (summary_value(output, "checked"), summary_value(output, "failed")) == ("2", "1")


def test_a_csv_report_has_one_row_per_listing(make_listing, split_threshold, tmp_path):
    matching = make_listing(title=MATCHING_TEXT, description=MATCHING_TEXT)
    mismatching = make_listing(title=MATCHING_TEXT, description=MISMATCHING_TEXT)
    broken = make_listing(color=(9, 9, 9))
    Listing.objects.filter(pk=broken.pk).update(image="listings/gone.png")
    report = tmp_path / "audit.csv"

    output = run_audit("--no-progress", "--report", str(report))

    rows = {int(row["listing_id"]): row for row in csv.DictReader(report.open())}
    assert list(rows) == [matching.pk, mismatching.pk, broken.pk]
    title, description = audit_analyses(mismatching)
    assert rows[mismatching.pk]["title_score"] == str(title.similarity_score)
    assert rows[mismatching.pk]["description_score"] == str(description.similarity_score)
    assert (rows[mismatching.pk]["title_verdict"], rows[mismatching.pk]["description_verdict"]) == ("match", "mismatch")
    assert (rows[mismatching.pk]["verdict"], rows[mismatching.pk]["status_after"]) == ("mismatch", "needs_review")
    assert (rows[matching.pk]["verdict"], rows[matching.pk]["status_after"]) == ("match", "approved")
    assert rows[matching.pk]["status_before"] == "pending" and rows[matching.pk]["error"] == ""
    assert rows[broken.pk]["outcome"] == "failed" and rows[broken.pk]["error"].startswith("image_unavailable: ")
    assert (rows[broken.pk]["status_before"], rows[broken.pk]["status_after"]) == ("pending", "pending")
    assert f"({len(rows)} rows)" in output


def test_a_json_report_has_the_same_rows(catalogue, everything_matches, tmp_path):
    listings = catalogue(2)
    report = tmp_path / "audit.json"

    run_audit("--no-progress", "--report", str(report), "--chunk-size", "1")

    rows = json.loads(report.read_text())
    assert [row["listing_id"] for row in rows] == [listing.pk for listing in listings]
    first = rows[0]
    assert set(first) == set(records.AuditRow.FIELDS)
    assert (first["outcome"], first["verdict"], first["status_before"], first["status_after"]) == (
        "checked", "match", "pending", "approved"
    )
    assert first["title_score"] == audit_analyses(listings[0])[0].similarity_score


# Resuming, idempotence


def test_a_crash_after_the_first_chunk_loses_nothing_and_a_rerun_finishes(catalogue, everything_matches, monkeypatch):
    listings = catalogue(7)
    save = local.audit_chunk_save
    calls = []

    def crash_on_the_second_chunk(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return save(**kwargs)

    monkeypatch.setattr(local, "audit_chunk_save", crash_on_the_second_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        run_audit("--no-progress", "--chunk-size", "3", "--batch-size", "2")
    assert [audit_analyses(listing).count() for listing in listings] == [2, 2, 2, 0, 0, 0, 0]

    monkeypatch.setattr(local, "audit_chunk_save", save)
    output = run_audit("--no-progress", "--chunk-size", "3")

    assert_checked_once(listings)
    assert (summary_value(output, "checked"), summary_value(output, "skipped")) == ("4", "3")


def test_a_second_run_skips_everything_and_recheck_redoes_it(catalogue, everything_matches):
    listings = catalogue(3)
    run_audit("--no-progress")

    output = run_audit("--no-progress")
    assert Analysis.objects.filter(source="audit").count() == 6
    assert (summary_value(output, "checked"), summary_value(output, "skipped")) == ("0", "3")

    output = run_audit("--no-progress", "--recheck")
    assert [audit_analyses(listing).count() for listing in listings] == [4, 4, 4]
    assert summary_value(output, "checked") == "3"


def test_a_listing_whose_texts_changed_is_checked_again(catalogue, everything_matches):
    listing, unchanged = catalogue(2)
    run_audit("--no-progress")
    Listing.objects.filter(pk=listing.pk).update(description="new description")

    output = run_audit("--no-progress")

    assert [a.text for a in audit_analyses(listing)][-1] == "new description"
    assert audit_analyses(unchanged).count() == 2
    assert (summary_value(output, "checked"), summary_value(output, "skipped")) == ("1", "1")


def test_a_missing_or_broken_image_fails_only_its_listing(catalogue, everything_matches):
    missing, corrupt, fine = catalogue(3)
    missing.image.storage.delete(missing.image.name)
    corrupt.image.storage.delete(corrupt.image.name)
    corrupt.image.storage.save(corrupt.image.name, ContentFile(b"\x89PNG\r\n\x1a\n truncated"))

    output = run_audit("--no-progress")

    assert_checked_once([fine])
    failures = {failure.listing_id: failure for failure in ListingCheckFailure.objects.all()}
    assert set(failures) == {missing.pk, corrupt.pk}
    assert failures[missing.pk].code == "image_unavailable" and failures[missing.pk].source == "audit"
    assert failures[corrupt.pk].code in ("not_an_image", "corrupt_image")
    assert failures[corrupt.pk].model == model_id() and failures[corrupt.pk].message
    assert not Analysis.objects.filter(subject_id__in=[str(missing.pk), str(corrupt.pk)]).exists()
    assert summary_value(output, "failed") == "2"
    assert summary_value(output, "image_unavailable") == "1"


# Batching, prefetching, transactions


def test_the_model_encodes_in_batches_of_batch_size(catalogue, everything_matches, encoder_calls):
    # Texts no other test encoded: the engine keeps text embeddings per process.
    catalogue(7, texts="batched product")

    run_audit("--no-progress", "--batch-size", "3")

    assert encoder_calls.image_calls == [3, 3, 1]
    assert encoder_calls.text_calls == [6, 6, 2]


def test_images_are_decoded_ahead_while_the_model_encodes(catalogue, everything_matches, monkeypatch, encoder_calls):
    listings = catalogue(6)
    second_batch = {listing.pk for listing in listings[3:]}
    next_batch_decoding = threading.Event()
    decode = services.listing_image_decode
    seen_while_encoding = []

    def recording_decode(*, listing):
        if listing.pk in second_batch:
            next_batch_decoding.set()
        return decode(listing=listing)

    from clipcheck.engine import get_engine

    engine = get_engine()
    encode_images = engine.encode_images

    def encode_waiting_for_the_next_batch(images):
        if not seen_while_encoding:
            # Without prefetching nobody decodes the next batch now: the wait times out.
            seen_while_encoding.append(next_batch_decoding.wait(timeout=10))
        return encode_images(images)

    monkeypatch.setattr(services, "listing_image_decode", recording_decode)
    monkeypatch.setattr(engine, "encode_images", encode_waiting_for_the_next_batch)

    run_audit("--no-progress", "--batch-size", "3")

    assert seen_while_encoding == [True]
    assert_checked_once(listings)


def test_the_model_runs_outside_any_transaction(catalogue, everything_matches, monkeypatch):
    catalogue(4)
    from clipcheck.engine import get_engine

    engine = get_engine()
    encode_images = engine.encode_images
    # The test itself runs inside a transaction; the audit must add none around the model.
    depth_at_start = len(connection.savepoint_ids)
    depths = []

    def recording(images):
        depths.append(len(connection.savepoint_ids))
        return encode_images(images)

    monkeypatch.setattr(engine, "encode_images", recording)

    run_audit("--no-progress", "--batch-size", "2", "--chunk-size", "4")

    assert depths == [depth_at_start, depth_at_start]


# Options and the model


@pytest.mark.parametrize(("arguments", "message"), [
    (["--batch-size", "0"], "--batch-size"),
    (["--chunk-size", "many"], "--chunk-size"),
    (["--limit", "-3"], "--limit"),
    (["--threshold", "1.5"], "--threshold"),
    (["--since", "yesterday"], "--since"),
    (["--status", "sold"], "Unknown --status sold"),
    (["--report", "audit.txt"], "--report must end in .csv or .json"),
    (["--no-wait"], "--no-wait only applies to --distributed"),
    (["--distributed", "--no-wait", "--dry-run"], "cannot be combined with --no-wait"),
])
def test_bad_options_are_refused(catalogue, arguments, message):
    catalogue(1)

    with pytest.raises(CommandError, match=message):
        run_audit("--no-progress", *arguments)

    assert Analysis.objects.count() == 0


def test_an_unusable_model_stops_the_audit_before_it_starts(catalogue, settings, fresh_engine, tmp_path):
    catalogue(2)
    set_clip_settings(settings, MODEL=str(tmp_path / "no-such-model"))

    with pytest.raises(CommandError, match="The model is unusable: The CLIP model .* could not be loaded"):
        run_audit("--no-progress")

    assert Analysis.objects.count() == 0


@pytest.mark.parametrize(("arguments", "environment", "message"), [
    (["--batch-size", "0"], {}, "argument --batch-size: '0' must be a whole number of at least 1"),
    ([], {"CLIPCHECK_MODEL": "/nonexistent/model"}, "The model is unusable"),
])
def test_the_exit_status_is_non_zero_with_a_clear_message(tmp_path, arguments, environment, message):
    environ = {
        **os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}", "CLIPCHECK_THRESHOLD": "0.25",
        **environment,
    }
    finished = subprocess.run(
        [sys.executable, "manage.py", "clip_audit", "--no-progress", *arguments],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )

    assert finished.returncode != 0
    assert message in finished.stderr


def test_no_progress_bar_without_a_terminal(catalogue, everything_matches):
    catalogue(2)
    out, err = io.StringIO(), io.StringIO()

    call_command("clip_audit", stdout=out, stderr=err)

    assert err.getvalue() == "" and "listing/s" not in out.getvalue()


def test_the_summary_reports_bands_and_throughput(catalogue, everything_matches):
    catalogue(3)

    output = run_audit("--no-progress")

    bands = {listing.match_quality for listing in Listing.objects.all()}
    assert sum(int(summary_value(output, f"band {band}")) for band in bands) == 3
    assert float(summary_value(output, "throughput (images/s)")) > 0
    assert summary_value(output, "images scored") == "3"


# The chunk function of the distributed mode


def chunk_options(**overrides):
    return records.AuditOptions(**overrides).resolved()


def test_a_chunk_run_twice_stores_nothing_twice(catalogue, everything_matches):
    listings = catalogue(4)
    ids = [listing.pk for listing in listings]
    options = chunk_options(recheck=True)

    first, rows = local.audit_chunk(listing_ids=ids, options=options)
    again, _ = local.audit_chunk(listing_ids=ids, options=options)

    assert (first.checked, first.skipped, len(rows)) == (4, 0, 4)
    assert (again.checked, again.skipped, again.images) == (0, 4, 0)
    assert_checked_once(listings)


def test_a_chunk_skips_listings_another_worker_stored_while_the_model_ran(catalogue, everything_matches, monkeypatch):
    listings = catalogue(3)
    ids = [listing.pk for listing in listings]
    options = chunk_options()
    save = local.audit_chunk_save
    other_worker = []

    def another_worker_finishes_first(**kwargs):
        if not other_worker:
            monkeypatch.setattr(local, "audit_chunk_save", save)
            other_worker.append(local.audit_chunk(listing_ids=ids[:2], options=options)[0])
        return save(**kwargs)

    monkeypatch.setattr(local, "audit_chunk_save", another_worker_finishes_first)

    summary, rows = local.audit_chunk(listing_ids=ids, options=options)

    assert other_worker[0].checked == 2
    assert (summary.checked, summary.skipped, summary.images) == (1, 2, 3)
    assert [row.listing_id for row in rows] == ids[2:]
    assert_checked_once(listings)


def test_a_chunk_for_another_model_is_refused(catalogue):
    listing = catalogue(1)[0]

    with pytest.raises(records.AuditMisconfigured, match="same CLIPCHECK_MODEL"):
        local.audit_chunk(listing_ids=[listing.pk], options=chunk_options(model="openai/clip-vit-large-patch14"))


def test_task_messages_round_trip(everything_matches):
    options = chunk_options(threshold=0.3, recheck=True, batch_size=8)

    assert records.AuditOptions.from_message(json.loads(json.dumps(options.as_message()))) == records.AuditOptions(
        threshold=0.3, recheck=True, batch_size=8, model=options.model, started_at=options.started_at,
    )


def test_a_dry_run_chunk_writes_nothing(catalogue, everything_matches):
    listings = catalogue(2)

    summary, rows = local.audit_chunk(listing_ids=[l.pk for l in listings], options=chunk_options(dry_run=True))

    assert (summary.checked, [row.status_after for row in rows]) == (2, ["approved", "approved"])
    assert Analysis.objects.count() == 0 and ImageEmbedding.objects.count() == 0
    assert not Listing.objects.filter(checked_at__isnull=False).exists()


class FinishedChunk:
    """What ``audit_wait`` reads of a Celery AsyncResult."""

    def __init__(self, id, payload=None, error=None):
        self.id, self.payload, self.result = id, payload, error

    def ready(self):
        return True

    def successful(self):
        return self.result is None

    def get(self, propagate=True):
        return self.payload

    def forget(self):
        pass


def test_waiting_adds_up_chunks_and_names_the_failed_ones():
    done = records.AuditSummary(checked=3, skipped=1, flagged=1, images=4, bands={"good": 2, "poor": 1})
    row = records.AuditRow(listing_id=7, title="lamp", outcome="checked")
    enqueued = distributed.AuditEnqueued(
        group_id="g",
        results=[
            FinishedChunk("a", {"summary": done.as_message(), "rows": [row.as_dict()]}),
            FinishedChunk("b", error=records.AuditMisconfigured("This worker runs another model")),
        ],
        sizes={"a": 4, "b": 5},
    )
    total, rows = records.AuditSummary(), []

    def on_chunk(chunk_summary, chunk_rows):
        total.add(chunk_summary)
        rows.extend(chunk_rows)

    distributed.audit_wait(enqueued=enqueued, on_chunk=on_chunk)

    assert (total.checked, total.skipped, total.flagged, total.images) == (3, 1, 1, 4)
    assert total.bands == {"good": 2, "poor": 1} and rows == [row]
    assert len(total.failed_chunks) == 1 and total.failed_chunks[0].startswith("5 listings: AuditMisconfigured(")


def test_failed_checks_are_listed_in_the_admin(catalogue, everything_matches, admin_client):
    broken = catalogue(1)[0]
    broken.image.storage.delete(broken.image.name)
    run_audit("--no-progress")

    page = admin_client.get("/admin/listings/listingcheckfailure/")

    assert page.status_code == 200
    assert b"image_unavailable" in page.content and broken.title.encode() in page.content


def test_photos_are_preprocessed_in_the_decode_threads_and_stored_as_encoded_from_scratch(catalogue, monkeypatch):
    import numpy as np

    from clipcheck.engine import get_engine

    listings = catalogue(3)
    engine = get_engine()
    preprocessed_in = []
    preprocess = engine.preprocess
    monkeypatch.setattr(engine, "preprocess", lambda images: preprocessed_in.append(
        threading.current_thread().name) or preprocess(images))
    run_audit("--no-progress")

    # Every photo in the audit's decode pool, none in the forwards' path.
    assert len(preprocessed_in) == 3 and all(name.startswith("audit-decode") for name in preprocessed_in)
    for listing in listings:
        decoded = services.listing_image_decode(listing=listing)
        stored = ImageEmbedding.objects.get(sha256=decoded.sha256, model=model_id()).as_array()
        assert np.abs(stored - engine.encode_images([decoded.image])[0]).max() < 1e-6


def test_an_audit_whose_model_stalls_exits_non_zero_past_the_stall_limit(tmp_path):
    from clipcheck.watchdog import EXIT_STATUS
    from tests.support.known_answer import KNOWN_ANSWER_MODEL
    from tests.support.runtime import RUNTIME_CACHE_DIR

    fault_file = tmp_path / "fault"
    environ = {
        **os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "DJANGO_SETTINGS_MODULE": "tests.support.server_settings", "CLIPCHECK_TEST_FAULT_FILE": str(fault_file),
        "CLIPCHECK_MODEL": str(KNOWN_ANSWER_MODEL), "CLIPCHECK_RUNTIME": "torch", "CLIPCHECK_NUM_THREADS": "1",
        "CLIPCHECK_RUNTIME_CACHE_DIR": RUNTIME_CACHE_DIR, "LISTINGS_AUDIT_STALL_SECONDS": "10",
    }

    def manage(*arguments, timeout=120):
        return subprocess.run([sys.executable, "manage.py", *arguments], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=timeout)

    assert manage("migrate", "-v0").returncode == 0
    assert manage("clip_seed_demo", "--count", "4").returncode == 0
    # Every image forward stalls (past the inference budget too); the limit leaves the model's load room.
    fault_file.write_text("sleep 120")
    started = time.monotonic()
    stalled = manage("clip_audit", "--no-progress")
    seconds = time.monotonic() - started

    assert stalled.returncode == EXIT_STATUS
    assert "clip_audit made no progress for 10 s" in stalled.stderr
    assert "in stall" in stalled.stderr  # the stacks show where it waited
    assert seconds < 100
    fault_file.write_text("")
    finished = manage("clip_audit", "--no-progress")
    assert finished.returncode == 0, finished.stderr
    assert "checked" in finished.stdout
