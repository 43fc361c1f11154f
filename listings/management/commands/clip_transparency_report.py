"""manage.py clip_transparency_report: the figures of a period's transparency report as CSV.

``--period 2026-H2`` (or ``2026``, ``2026-Q3``, ``2026-09``), or ``--since``
and ``--until``; ``--output FILE`` (default: standard output). The figures
and their definitions: ``listings.transparency_report``, docs/compliance.md.
"""

import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from listings.management.options import day_or_time
from listings.transparency_report import period_bounds, transparency_report


class Command(BaseCommand):
    help = (
        "The transparency report of a period as CSV: restrictions by category, reason code and automated "
        "detection, time from flag to decision, appeals, and the accuracy of the automated check."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", help="A half year (2026-H2), year (2026), quarter (2026-Q3) or month (2026-09), UTC.")
        parser.add_argument("--since", type=day_or_time, help="From this date or time (UTC).")
        parser.add_argument("--until", type=day_or_time, help="Before this date or time (UTC).")
        parser.add_argument("--output", metavar="FILE", help="Write the CSV here (default: standard output).")

    def handle(
        self, *args: Any, period: str | None = None, since: datetime | None = None, until: datetime | None = None,
        output: str | None = None, **options: Any,
    ) -> None:
        if period and (since or until):
            raise CommandError("Give --period, or --since and --until, not both.")
        if period:
            try:
                since, until = period_bounds(period)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        elif not (since and until):
            raise CommandError("Say which period: --period 2026-H2, or --since and --until.")
        if since >= until:
            raise CommandError("--since must be before --until.")
        report = transparency_report(since=since, until=until)
        if output and output != "-":
            with open(output, "w", encoding="utf-8", newline="") as stream:
                report.write_csv(stream)
            self.stderr.write(f"Wrote the report of {since.date()} to {until.date()} to {output}.")
        else:
            report.write_csv(self.stdout if self.stdout else sys.stdout)
