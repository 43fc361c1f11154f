"""manage.py clip_duplicates: clusters of listings whose photos are the same or near-identical.

The work is done by ``listings.duplicates``; this command parses the options,
shows progress and writes the report. See docs/similarity.md.
"""

import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clipcheck.engine import get_engine
from clipcheck.errors import ClipcheckError
from clipcheck.services.thresholds import model_id
from clipcheck.spreadsheets import spreadsheet_row
from listings import duplicates
from listings.management.options import positive_int
from listings.models import Listing
from listings.settings import listings_settings

if TYPE_CHECKING:
    from tqdm import tqdm

REPORT_FORMATS = (".csv", ".json")
CSV_FIELDS = ("cluster", "size", "listing_id", "title", "seller_id", "status", "category", "image_sha256",
              "best_similarity", "best_layout_similarity")


class Command(BaseCommand):
    help = "Find clusters of listings whose photos are the same or near-identical, as a CSV or JSON report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--report", metavar="PATH", required=True, help="Report file (.csv or .json).")
        parser.add_argument(
            "--state", metavar="PATH",
            help="Progress file (default: the report's path + .state.json); a run with the same file resumes.",
        )
        parser.add_argument("--restart", action="store_true", help="Ignore a saved state: start over.")
        parser.add_argument(
            "--chunk-size", type=positive_int, help="Listings per database page (default: LISTINGS AUDIT_CHUNK_SIZE)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = Path(options["report"])
        if report.suffix.lower() not in REPORT_FORMATS:
            raise CommandError(f"--report must end in {' or '.join(REPORT_FORMATS)}: {str(report)!r}.")
        if not report.parent.is_dir():
            raise CommandError(f"The report's directory {str(report.parent)!r} does not exist.")
        state_path = Path(options["state"] or f"{report}.state.json")
        try:
            get_engine()
        except ClipcheckError as exc:
            raise CommandError(f"The model is unusable: {exc.reason}")
        model = model_id()
        state = duplicates.DuplicatesState(model=model) if options["restart"] else (
            duplicates.DuplicatesState.load(state_path, model=model)
        )
        if state.last_pk:
            self.stdout.write(f"Resuming after listing #{state.last_pk} ({len(state.pairs)} pair(s) found so far).")
        chunk_size = options["chunk_size"] or int(listings_settings.AUDIT_CHUNK_SIZE)
        progress = self.progress_bar(state, enabled=not options["no_progress"])
        try:
            for chunk in duplicates.duplicates_chunks(state=state, chunk_size=chunk_size):
                duplicates.duplicates_chunk(listings=chunk, state=state)
                self.save(state, state_path)
                progress.update(len(chunk))
        finally:
            progress.close()
        state.done = True
        self.save(state, state_path)
        clusters = duplicates.duplicates_clusters(pairs=state.pairs)
        self.write_report(report, clusters)
        listed = sum(len(cluster.listings) for cluster in clusters)
        self.stdout.write(f"{len(clusters)} cluster(s) of near-duplicate photos, {listed} listing(s); report: {report}")
        for listing_id, reason in state.failed[:5]:
            self.stderr.write(f"Listing #{listing_id} could not be read: {reason}")

    def save(self, state: duplicates.DuplicatesState, path: Path) -> None:
        try:
            state.save(path)
        except OSError as exc:
            raise CommandError(f"The state file {str(path)!r} cannot be written: {exc.strerror}.")

    def progress_bar(self, state: duplicates.DuplicatesState, *, enabled: bool) -> "tqdm":
        from tqdm import tqdm

        enabled = enabled and self.stderr.isatty()
        total = Listing.objects.filter(pk__gt=state.last_pk).count() if enabled else None
        # tqdm writes straight to the terminal, as clip_audit's bar does.
        return tqdm(total=total, unit="listing", disable=not enabled, file=sys.stderr)

    def write_report(self, path: Path, clusters: Sequence[duplicates.Cluster]) -> None:
        try:
            handle = path.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"The report {str(path)!r} cannot be written: {exc.strerror}.")
        with handle:
            if path.suffix.lower() == ".json":
                json.dump([self.cluster_json(cluster) for cluster in clusters], handle, indent=1)
                handle.write("\n")
                return
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for cluster in clusters:
                for listing in cluster.listings:
                    best = self.best_pair(cluster, listing.pk)
                    writer.writerow(spreadsheet_row({
                        "cluster": cluster.number, "size": len(cluster.listings), "listing_id": listing.pk,
                        "title": listing.title, "seller_id": listing.seller_id or "", "status": listing.status,
                        "category": listing.category, "image_sha256": listing.image_sha256,
                        "best_similarity": best[2] if best else "",
                        "best_layout_similarity": "" if not best or best[3] is None else best[3],
                    }))

    @staticmethod
    def best_pair(cluster: duplicates.Cluster, listing_id: int) -> duplicates.Pair | None:
        pairs = [pair for pair in cluster.pairs if listing_id in pair[:2]]
        return max(pairs, key=lambda pair: pair[2]) if pairs else None

    @staticmethod
    def cluster_json(cluster: duplicates.Cluster) -> dict[str, Any]:
        return {
            "cluster": cluster.number,
            "size": len(cluster.listings),
            "listings": [
                {"listing_id": listing.pk, "title": listing.title, "seller_id": listing.seller_id,
                 "status": listing.status, "category": listing.category, "image_sha256": listing.image_sha256}
                for listing in cluster.listings
            ],
            "pairs": [
                {"listing_ids": [first, second], "similarity": similarity, "layout_similarity": layout}
                for first, second, similarity, layout in cluster.pairs
            ],
        }
