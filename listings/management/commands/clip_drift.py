"""manage.py clip_drift: has the catalogue moved away from what the active adaptation was promoted on?

Compares a recent window of checks and decisions with the reference stored
with the active adaptation, per category (``clipcheck.drift``); exits 1 with
one line per drifting category, for cron. See docs/adaptation.md, "Drift".
"""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from clipcheck import drift
from clipcheck.services.adaptations import adaptation_active_row
from clipcheck.services.thresholds import model_id
from listings.drift import category_windows
from listings.management.options import fraction, positive_int


class Command(BaseCommand):
    help = (
        "Compare the last --days of checks with the reference stored with the active adaptation, per category "
        "(score PSI, moderators' overturn rate, mean photo embedding); exit 1 past the limits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=positive_int, default=7, help="The recent window (default 7 days).")
        parser.add_argument("--psi-limit", type=float, default=drift.PSI_LIMIT,
                            help=f"Score PSI past which a category drifts (default {drift.PSI_LIMIT}).")
        parser.add_argument("--overturn-limit", type=fraction, default=drift.OVERTURN_LIMIT,
                            help="How far the overturn rate's 95 %% interval may sit above the reference rate "
                                 f"(default {drift.OVERTURN_LIMIT}).")
        parser.add_argument("--shift-limit", type=fraction, default=drift.SHIFT_LIMIT,
                            help=f"Mean embedding shift (1 - cosine) past which a category drifts (default {drift.SHIFT_LIMIT}).")

    def handle(
        self, *args: Any, days: int, psi_limit: float, overturn_limit: float, shift_limit: float, **options: Any
    ) -> None:
        active = adaptation_active_row()
        if active is None or not active.reference.get("categories"):
            raise CommandError(
                f"The model {model_id()!r} has no active adaptation with a reference: run clip_adapt --apply first."
            )
        since = timezone.now() - timedelta(days=days)
        windows = category_windows(model=model_id(), since=since)
        self.stdout.write(
            f"Drift of the last {days} days against adaptation v{active.version} (reference until "
            f"{active.reference.get('until', '?')}); judged from {drift.MIN_WINDOW_COUNT} checks per category."
        )
        self.stdout.write(f"  {'category':<24} {'checks':>6} {'PSI':>7} {'overturns':>10} {'shift':>8}")
        drifting: list[str] = []
        for category, reference in sorted(active.reference["categories"].items()):
            figures = drift.category_drift(
                windows.get(category, drift.CategoryWindow()), reference,
                psi_limit=psi_limit, overturn_limit=overturn_limit, shift_limit=shift_limit,
            )
            self.stdout.write(
                f"  {category:<24} {figures['scores']:>6} {_value(figures.get('psi')):>7} "
                f"{_value(figures.get('overturn_rate')):>10} {_value(figures.get('embedding_shift')):>8}"
            )
            drifting += [f"{category}: {alarm}" for alarm in figures["alarms"]]
        if drifting:
            raise CommandError(f"Drift past the limits in {len(drifting)} figure(s): " + "; ".join(drifting))
        self.stdout.write(self.style.SUCCESS("No category drifted past the limits."))


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
