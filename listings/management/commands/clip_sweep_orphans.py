"""manage.py clip_sweep_orphans: remove listing images and upload analyses a crash left behind.

The work is done by ``listings.sweep``; see docs/operations.md for the schedule.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from listings.sweep import grace_timedelta, orphans_sweep


def non_negative_hours(value: str) -> float:
    try:
        hours = float(value)
    except ValueError:
        hours = -1
    if not 0 <= hours < 24 * 365 * 100:
        raise CommandError(f"--grace-hours {value!r} must be a number of hours, 0 or more.")
    return hours


class Command(BaseCommand):
    help = (
        "Remove stored listing images that no listing names, and upload analyses that belong to no "
        "listing, once older than the grace period."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace-hours", type=str, default="24",
            help="Keep anything younger than this many hours (default 24): it may belong to an upload in progress.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print what would be removed; remove nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        hours = non_negative_hours(options["grace_hours"])
        result = orphans_sweep(grace=grace_timedelta(hours), dry_run=options["dry_run"])
        verb = "Would remove" if options["dry_run"] else "Removed"
        for name in result.files:
            self.stdout.write(f"{verb} {name}", style_func=None)
        self.stdout.write(
            f"{verb} {len(result.files)} orphan image file(s) and {result.analyses} unlinked upload "
            f"analysis(es) older than {hours:g} h; {result.files_kept_recent} recent orphan file(s) kept."
        )
