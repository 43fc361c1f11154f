"""manage.py clip_audit: check the catalogue's titles and descriptions against their images.

The work is done by ``listings.audit`` (``local`` or ``distributed``); this command parses the options,
shows progress and prints the summary. See docs/audit.md.
"""

import csv
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from celery import current_app
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from clipcheck.engine import get_engine
from clipcheck.errors import ClipcheckError
from clipcheck.scoring import quality_bands
from clipcheck.spreadsheets import spreadsheet_row
from clipcheck.watchdog import StallWatchdog
from listings.audit import distributed, local, records
from listings.management.options import positive_int
from listings.models import Listing
from listings.settings import listings_settings

if TYPE_CHECKING:
    from tqdm import tqdm

REPORT_FORMATS = (".csv", ".json")


def parse_statuses(values: Sequence[str] | None) -> tuple[str, ...]:
    if not values:
        # Choices members are str (without Django's stubs mypy reads them as (value, label) tuples).
        return cast(tuple[str, ...], records.DEFAULT_STATUSES)
    statuses = [status.strip() for value in values for status in value.split(",") if status.strip()]
    if "all" in statuses:
        return tuple(Listing.Status.values)
    unknown = sorted(set(statuses) - set(Listing.Status.values))
    if unknown or not statuses:
        raise CommandError(
            f"Unknown --status {', '.join(unknown) or '(empty)'}; use {', '.join(Listing.Status.values)} or all."
        )
    return tuple(dict.fromkeys(statuses))


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = parse_datetime(value)
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime.combine(day, time.min)
    except ValueError:  # well-formed but impossible, like 2025-02-30
        moment = None
    if moment is None:
        raise CommandError(f"--since {value!r} is not a date (2025-01-31) or a date and time (2025-01-31T08:00).")
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def parse_threshold(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        threshold: float | None = float(value)
    except ValueError:
        threshold = None
    if threshold is None or not 0 <= threshold <= 1:
        raise CommandError(f"--threshold {value!r} must be a number between 0 and 1.")
    return threshold


class AuditReport:
    """One row per listing checked or failed, as CSV or JSON (by the file's extension).

    Rows are written as chunks commit, so a stopped run leaves a report of
    what it did; a JSON report is closed even when the run fails.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in REPORT_FORMATS:
            raise CommandError(f"--report must end in {' or '.join(REPORT_FORMATS)}: {path!r}.")
        try:
            self.handle = self.path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"The report {path!r} cannot be written: {exc.strerror}.")
        self.rows = 0
        if self.format == ".csv":
            self.writer = csv.DictWriter(self.handle, fieldnames=records.AuditRow.FIELDS)
            self.writer.writeheader()
        else:
            self.handle.write("[")

    def write(self, rows: Iterable[records.AuditRow]) -> None:
        for row in rows:
            if self.format == ".csv":
                self.writer.writerow(spreadsheet_row({**row.as_dict(), "reasons": json.dumps(row.reasons)}))
            else:
                self.handle.write(("," if self.rows else "") + "\n" + json.dumps(row.as_dict()))
            self.rows += 1
        self.handle.flush()

    def close(self) -> None:
        if self.format == ".json":
            self.handle.write("\n]\n")
        self.handle.close()


class Command(BaseCommand):
    help = (
        "Check listings' titles and descriptions against their images with CLIP, in chunks, "
        "skipping listings already checked with the same model, image and texts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status", action="append", metavar="STATUS",
            help="Listing statuses to audit (repeatable or comma-separated; 'all'). Default: pending,approved.",
        )
        parser.add_argument("--since", help="Only listings created or updated since this date or date and time.")
        parser.add_argument("--limit", type=positive_int, help="Check at most this many listings.")
        parser.add_argument(
            "--threshold", help="Mismatch threshold for this run (default: the configured or calibrated one)."
        )
        parser.add_argument(
            "--recheck", action="store_true", help="Check listings already checked with the same model, image and texts."
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the verdicts; write nothing.")
        parser.add_argument("--report", metavar="PATH", help="Write one row per listing to PATH (.csv or .json).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--batch-size", type=positive_int, help="Listings per forward pass (default: CLIPCHECK BATCH_SIZE)."
        )
        parser.add_argument(
            "--chunk-size", type=positive_int,
            help="Listings per database page, commit and task (default: LISTINGS AUDIT_CHUNK_SIZE).",
        )
        parser.add_argument(
            "--distributed", action="store_true", help="Send the chunks to Celery workers on the 'clip' queue."
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="With --distributed: print the audit's group id and return."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["no_wait"] and not options["distributed"]:
            raise CommandError("--no-wait only applies to --distributed.")
        if options["no_wait"] and (options["report"] or options["dry_run"]):
            raise CommandError("--report and --dry-run need the results: they cannot be combined with --no-wait.")
        audit_options = records.AuditOptions(
            statuses=parse_statuses(options["status"]),
            since=parse_since(options["since"]),
            limit=options["limit"],
            threshold=parse_threshold(options["threshold"]),
            recheck=options["recheck"],
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            chunk_size=options["chunk_size"],
        ).resolved()
        report = AuditReport(options["report"]) if options["report"] else None
        self.progress = self.progress_bar(audit_options, enabled=not options["no_progress"] and not options["no_wait"])
        # No silent hang: past the limit without a finished chunk the process ends with its stacks.
        self.watchdog = StallWatchdog(listings_settings.AUDIT_STALL_SECONDS, what="clip_audit")
        try:
            with self.watchdog:
                summary = self.run(audit_options, report=report, options=options)
        finally:
            self.progress.close()
            if report is not None:
                report.close()
        if summary is None:
            return
        self.print_summary(summary, audit_options, report)
        if summary.failed_chunks:
            raise CommandError(
                f"{len(summary.failed_chunks)} chunk(s) failed; run the audit again to finish them: "
                + "; ".join(summary.failed_chunks[:5])
            )

    def run(
        self, audit_options: records.AuditOptions, *, report: AuditReport | None, options: Mapping[str, Any]
    ) -> records.AuditSummary | None:
        if options["distributed"]:
            self.check_broker()
            return self.run_distributed(audit_options, report=report, wait=not options["no_wait"])
        self.check_model()
        self.watchdog.progress()  # the model's first load may take a while of its own

        def skipped(count: int) -> None:
            self.watchdog.progress()
            self.progress.update(count)

        return local.audit_run(
            options=audit_options,
            on_chunk=lambda chunk_summary, rows: self.chunk_done(chunk_summary, rows, audit_options, report),
            on_skipped=skipped,
        )

    def check_model(self) -> None:
        try:
            get_engine()
        except ClipcheckError as exc:  # the operator gets the path and the exception
            raise CommandError(f"The model is unusable: {exc.reason}")

    def check_broker(self) -> None:
        try:
            workers = distributed.audit_broker_check()
        except ClipcheckError as exc:
            raise CommandError(exc.message)
        if not workers:
            self.stderr.write(
                "No running worker consumes the 'clip' queue yet; the chunks wait until one starts "
                f"(celery -A {current_app.main} worker -Q clip --concurrency 1)."
            )

    def progress_bar(self, options: records.AuditOptions, *, enabled: bool) -> "tqdm":
        from tqdm import tqdm

        enabled = enabled and self.stderr.isatty()
        total = local.audit_candidates(options=options).count() if enabled and options.limit is None else None
        # tqdm writes straight to the terminal: Django's OutputWrapper would
        # end every redraw with a newline.
        return tqdm(total=total or options.limit, unit="listing", disable=not enabled, file=sys.stderr)

    def chunk_done(
        self, chunk_summary: records.AuditSummary, rows: Sequence[records.AuditRow], options: records.AuditOptions,
        report: AuditReport | None,
    ) -> None:
        self.watchdog.progress()
        self.progress.update(chunk_summary.checked + chunk_summary.failed + chunk_summary.skipped)
        if report is not None:
            report.write(rows)
        if options.dry_run and rows:
            # Printed around the bar, which is cleared and redrawn.
            with self.progress.external_write_mode():
                for row in rows:
                    self.stdout.write(self.verdict_line(row))

    def verdict_line(self, row: records.AuditRow) -> str:
        if row.error:
            return f"#{row.listing_id} failed: {row.error}"
        scores = ", ".join(
            f"{name} {score:.4f} {verdict}"
            for name, score, verdict in (
                ("title", row.title_score, row.title_verdict),
                ("description", row.description_score, row.description_verdict),
            )
            if score is not None
        )
        reasons = "; ".join(reason["message"] for reason in row.reasons)
        return (
            f"#{row.listing_id} {scores} -> {row.verdict}; status {row.status_before} -> {row.status_after}"
            + (f"; reasons: {reasons}" if reasons else "")
        )

    def run_distributed(
        self, options: records.AuditOptions, *, report: AuditReport | None, wait: bool
    ) -> records.AuditSummary | None:
        summary = records.AuditSummary()
        started = timezone.now()
        enqueued = distributed.audit_enqueue(options=options, summary=summary, with_rows=bool(report) or options.dry_run)
        self.progress.update(summary.skipped)
        self.stdout.write(
            f"Audit {enqueued.group_id}: {len(enqueued.results)} chunk(s), {enqueued.listings} listing(s) "
            f"sent to the 'clip' queue; {summary.skipped} up to date."
        )
        if not wait:
            return None

        def chunk_done(chunk_summary: records.AuditSummary, rows: Sequence[records.AuditRow]) -> None:
            summary.add(chunk_summary)
            self.chunk_done(chunk_summary, rows, options, report)

        try:
            distributed.audit_wait(enqueued=enqueued, on_chunk=chunk_done)
        except KeyboardInterrupt:
            raise CommandError(
                f"Stopped waiting. The workers go on with audit {enqueued.group_id}; "
                "run the audit again later to see what is left."
            )
        summary.seconds = (timezone.now() - started).total_seconds()
        return summary

    def print_summary(
        self, summary: records.AuditSummary, options: records.AuditOptions, report: AuditReport | None
    ) -> None:
        mode = "dry run, nothing written" if options.dry_run else "results stored"
        self.stdout.write(f"\nAudit summary ({mode}; model {options.model}, threshold {options.threshold:g})")
        lines: list[tuple[str, object]] = [
            ("checked", summary.checked),
            ("skipped (up to date)", summary.skipped),
            ("failed", summary.failed),
            *((f"  {code}", count) for code, count in sorted(summary.failures.items())),
            ("flagged (mismatch)", summary.flagged),
            *((f"  band {band}", count) for band, count in _bands_in_order(summary.bands)),
        ]
        if summary.failed_chunks:
            lines.append(("chunks failed", len(summary.failed_chunks)))
        lines += [
            ("images scored", summary.images),
            ("seconds", f"{summary.seconds:.1f}"),
            ("throughput (images/s)", f"{summary.images_per_second:.1f}"),
        ]
        width = max(len(label) for label, _ in lines)
        for label, value in lines:
            self.stdout.write(f"  {label.ljust(width)}  {value:>8}")
        if report is not None:
            self.stdout.write(f"Report: {report.path} ({report.rows} rows)")


def _bands_in_order(bands: Mapping[str, int]) -> list[tuple[str, int]]:
    order = [label for label, _ in quality_bands()]
    return sorted(bands.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
