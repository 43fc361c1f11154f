"""The audit on this machine: selecting the listings and checking them in a pipeline.

``audit_run`` is the single-machine audit (``manage.py clip_audit``):

- listings are read in keyset-paginated chunks over the primary key
  (``pk > last_pk ORDER BY pk LIMIT chunk``), never the whole table;
- listings already checked with the same model, image and texts are skipped
  (``--recheck`` redoes them), so a run that was stopped resumes where it
  stopped when it is run again;
- images are read and decoded in background threads ahead of the model, so
  the model never waits for storage or the decoder; the model runs in
  batches of ``batch_size`` listings outside any transaction;
- each chunk's analyses, status changes and failures are then committed in
  one short transaction: a killed run loses nothing it committed;
- a listing whose image is missing or broken fails alone: it is counted,
  reported and logged as a ``ListingCheckFailure``.

``audit_chunk`` checks one chunk of listing ids the same way: it is what a
Celery worker runs in the distributed mode (``listings.tasks``). Running a
chunk twice stores nothing twice: listings done meanwhile are skipped under
a row lock when the results are written.
"""

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar, cast

from django.db import transaction
from django.db.models import Q, QuerySet

from clipcheck import scoring
from clipcheck.errors import ClipcheckError
from clipcheck.images import DecodedImage
from clipcheck.models import Analysis
from clipcheck.paging import keyset_pages
from clipcheck.services.thresholds import model_id
from clipcheck.verdicts import suggestion
from listings import services
from listings.audit.records import AuditMisconfigured, AuditOptions, AuditRow, AuditSummary
from listings.models import Listing, ListingCheckFailure
from listings.services import ListingCheck
from listings.settings import listings_settings

T = TypeVar("T")

# Selection


def audit_candidates(*, options: AuditOptions) -> QuerySet[Listing]:
    """The listings an audit looks at (skipping happens per chunk)."""
    queryset = Listing.objects.filter(status__in=options.statuses)
    if options.since is not None:
        queryset = queryset.filter(Q(created_at__gte=options.since) | Q(updated_at__gte=options.since))
    return queryset


def listing_is_audited(*, listing: Listing, options: AuditOptions) -> bool:
    """True when ``listing`` needs nothing from this audit: checked with its
    model, image and texts (and, with ``recheck``, since the run started)."""
    if listing.needs_check(model=options.model):
        return False
    return not options.recheck or (listing.checked_at is not None and listing.checked_at >= options.started_at)


def audit_chunks(*, options: AuditOptions, summary: AuditSummary) -> Iterator[list[Listing]]:
    """Chunks of up to ``chunk_size`` listings that need checking, in pk order.

    Rows are read ``chunk_size`` at a time by primary key ranges (Sentry's
    RangeQuerySetWrapper pattern): each query starts after the last pk seen,
    so the table is never loaded whole and rows inserted or deleted during
    the run do not shift the pages. Up-to-date listings are counted in
    ``summary.skipped``; at most ``limit`` listings are yielded.
    """
    assert options.chunk_size is not None  # resolved options
    wanted = options.limit
    chunk = []
    for page in keyset_pages(audit_candidates(options=options), page_size=options.chunk_size):
        for listing in page:
            if listing_is_audited(listing=listing, options=options):
                summary.skipped += 1
                continue
            chunk.append(listing)
            if wanted is not None:
                wanted -= 1
                if wanted == 0:
                    break
            if len(chunk) == options.chunk_size:
                yield chunk
                chunk = []
        if wanted == 0:
            break
    if chunk:
        yield chunk


# Processing


def audit_run(
    *, options: AuditOptions, on_chunk: Callable[[AuditSummary, list[AuditRow]], object] | None = None,
    on_skipped: Callable[[int], object] | None = None,
) -> AuditSummary:
    """Audit the catalogue on this machine; returns the ``AuditSummary``.

    ``options`` must be ``resolved()``. ``on_chunk(summary, rows)`` is
    called with the counts and report rows of each committed chunk,
    ``on_skipped(n)`` as listings are found up to date (progress).
    """
    summary = AuditSummary()
    started = time.monotonic()
    chunks = _counting_skips(audit_chunks(options=options, summary=summary), summary, on_skipped)
    for chunk_summary, rows in _audit_pipeline(chunks=chunks, options=options):
        summary.add(chunk_summary)
        if on_chunk is not None:
            on_chunk(chunk_summary, rows)
    summary.seconds = time.monotonic() - started
    return summary


def _counting_skips(
    chunks: Iterable[list[Listing]], summary: AuditSummary, on_skipped: Callable[[int], object] | None
) -> Iterator[list[Listing]]:
    reported = 0
    for chunk in chunks:
        if on_skipped is not None and summary.skipped > reported:
            on_skipped(summary.skipped - reported)
            reported = summary.skipped
        yield chunk
    if on_skipped is not None and summary.skipped > reported:
        on_skipped(summary.skipped - reported)


def audit_chunk(*, listing_ids: Iterable[int], options: AuditOptions) -> tuple[AuditSummary, list[AuditRow]]:
    """Check one chunk of listings by id (a distributed audit's task).

    Listings up to date for this audit are skipped, so a chunk delivered
    twice (a worker killed before acknowledging it) stores nothing twice.
    Returns the chunk's ``AuditSummary`` and report rows.
    """
    if options.model != model_id():
        raise AuditMisconfigured(
            f"This worker runs the model {model_id()!r} but the audit uses {options.model!r}: "
            "start the workers with the same CLIPCHECK_MODEL as the command."
        )
    started = time.monotonic()
    summary = AuditSummary()
    listings: list[Listing] = []
    for listing in Listing.objects.filter(pk__in=listing_ids).order_by("pk"):
        if listing_is_audited(listing=listing, options=options):
            summary.skipped += 1
        else:
            listings.append(listing)
    rows: list[AuditRow] = []
    for chunk_summary, chunk_rows in _audit_pipeline(chunks=[listings] if listings else [], options=options):
        summary.add(chunk_summary)
        rows.extend(chunk_rows)
    summary.seconds = time.monotonic() - started
    return summary, rows


def _audit_pipeline(
    *, chunks: Iterable[list[Listing]], options: AuditOptions
) -> Iterator[tuple[AuditSummary, list[AuditRow]]]:
    """Yield ``(summary, rows)`` per chunk once its results are committed.

    The images of the next listings (up to two batches ahead, across chunk
    boundaries) are read, decoded and preprocessed for the model by a thread
    pool while the model encodes the current batch (preprocessing in the
    forwards' thread left the lanes idle meanwhile); the chunk generator
    itself (database reads) only ever runs in this thread.
    """
    assert options.batch_size is not None  # resolved options
    numbered = ((number, listing) for number, chunk in enumerate(chunks) for listing in chunk)
    with ThreadPoolExecutor(
        max_workers=int(listings_settings.AUDIT_DECODE_THREADS), thread_name_prefix="audit-decode"
    ) as pool:
        try:
            ahead = _submitted_ahead(numbered, pool, ahead=2 * options.batch_size)
            for _, items in itertools.groupby(ahead, key=lambda item: item[0]):
                checks = []
                for batch in _batched(items, options.batch_size):
                    listings = [listing for _, listing, _ in batch]
                    primary_photos = [_photo_read(future) for _, _, future in batch]
                    checks.extend(services.listings_score(
                        listings=listings, primary_photos=primary_photos, source=Analysis.Source.AUDIT,
                        threshold=options.threshold, store_embeddings=not options.dry_run,
                        category_thresholds=options.category_thresholds,
                    ))
                    # The decoded pictures are not needed past the forward pass.
                    del primary_photos
                outcomes = audit_chunk_save(checks=checks, options=options)
                yield _chunk_summary(outcomes), [_report_row(outcome) for outcome in outcomes if not outcome.skipped]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _submitted_ahead(
    numbered: Iterable[tuple[int, Listing]], pool: ThreadPoolExecutor, *, ahead: int
) -> Iterator[tuple[int, Listing, Future[DecodedImage]]]:
    """``(chunk number, listing, future of its decoded image)`` in order, with
    up to ``ahead`` images being decoded before they are asked for."""
    pending: deque[tuple[int, Listing, Future[DecodedImage]]] = deque()
    for number, listing in numbered:
        pending.append((number, listing, pool.submit(services.listing_image_prepare, listing=listing)))
        if len(pending) > ahead:
            yield pending.popleft()
    while pending:
        yield pending.popleft()


def _photo_read(future: Future[DecodedImage]) -> services.PhotoRead:
    try:
        return services.PhotoRead(image=future.result())
    except ClipcheckError as exc:
        return services.PhotoRead(error=exc)


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def audit_chunk_save(*, checks: list[ListingCheck], options: AuditOptions) -> list[ListingCheck]:
    """Commit one chunk's results in one short transaction (nothing in a dry run).

    The listings are locked as they are written; listings another worker
    stored first (same model, image and texts) are skipped.
    """
    if options.dry_run:
        return checks
    with transaction.atomic():
        outcomes = services.listings_check_save(
            checks=checks, done=lambda listing: listing_is_audited(listing=listing, options=options)
        )
        ListingCheckFailure.objects.bulk_create([
            ListingCheckFailure(
                listing_id=outcome.listing.pk, source=Analysis.Source.AUDIT, code=outcome.error.code,
                message=outcome.error.message, model=options.model,
            )
            for outcome in outcomes
            if outcome.error is not None
        ])
    return outcomes


def _chunk_summary(outcomes: Iterable[ListingCheck]) -> AuditSummary:
    summary = AuditSummary()
    for outcome in outcomes:
        if outcome.error is not None:
            summary.failed += 1
            summary.failures[outcome.error.code] += 1
            continue
        summary.images += 1
        if outcome.skipped:
            summary.skipped += 1
            continue
        summary.checked += 1
        summary.flagged += not outcome.is_match
        summary.bands[_weaker_band(outcome)] += 1
    return summary


def _weaker_band(outcome: ListingCheck) -> str:
    # The listing's band is that of its weaker score, as in Listing.match_quality.
    return scoring.match_quality(outcome.weakest_score, outcome.threshold)


def _report_row(outcome: ListingCheck) -> AuditRow:
    listing = outcome.listing
    row = AuditRow(
        listing_id=listing.pk, title=listing.title, outcome="failed" if outcome.error else "checked",
        status_before=outcome.from_status, status_after=outcome.to_status,
    )
    if outcome.error is not None:
        row.error = f"{outcome.error.code}: {outcome.error.message}"
        return row
    title, description = outcome.title_analysis, outcome.description_analysis
    if title is not None:
        row.title_score, row.title_verdict = title.similarity_score, title.verdict
    if description is not None:
        row.description_score, row.description_verdict = description.similarity_score, description.verdict
    # A choices member is a str (without Django's stubs mypy reads it as its (value, label) tuple).
    row.verdict = cast(str, Analysis.Verdict.MATCH if outcome.is_match else Analysis.Verdict.MISMATCH)
    row.match_quality = _weaker_band(outcome)
    row.reasons = outcome.reasons
    row.suggestion = suggestion(outcome.reasons) or ""
    return row
