"""manage.py clip_prune_analyses: delete API analyses older than the retention period.

The work is done by ``clipcheck.retention``; run it daily (docs/operations.md).
"""

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clipcheck.retention import analyses_prune
from clipcheck.settings import clip_settings


def positive_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number of days, at least 1")
    return days


class Command(BaseCommand):
    help = "Delete analyses made by the anonymous API (/clip/analyze) older than ANALYSIS_RETENTION_DAYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=positive_days,
                            help="Keep this many days instead of CLIPCHECK ANALYSIS_RETENTION_DAYS.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] or clip_settings.ANALYSIS_RETENTION_DAYS
        if days is None:
            self.stdout.write("ANALYSIS_RETENTION_DAYS is None: API analyses are kept; nothing deleted.")
            return
        count = analyses_prune(days=days, dry_run=options["dry_run"])
        verb = "Would delete" if options["dry_run"] else "Deleted"
        self.stdout.write(f"{verb} {count} API analysis(es) older than {days} day(s).")
