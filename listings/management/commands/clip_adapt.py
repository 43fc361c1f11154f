"""manage.py clip_adapt: learn the category adaptation from the catalogue's labels.

Labels: every listing's category (chosen by its seller), confirmed or not by
moderators; a ``wrong_category`` rejection counts against its category. The
fit and the promotion gate are ``clipcheck.adaptation``; storing and serving
``clipcheck.services.adaptations``. See docs/adaptation.md.
"""

import getpass
import sys
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clipcheck.adaptation import MIN_CATEGORY_HELD_OUT, MIN_PHOTOS_PER_CATEGORY
from clipcheck.calibration import label_warnings
from clipcheck.errors import ClipcheckError
from clipcheck.services import adaptation_learning, adaptations
from clipcheck.services.thresholds import model_id
from clipcheck.settings import clip_settings
from listings.drift import drift_reference
from listings.labels import AdaptationLabels, adaptation_labels, match_labels
from listings.management.options import positive_int

PROVENANCE = (
    ("seller", "seller's category, no decision yet"),
    ("approved", "approved by a moderator after the machine flagged it"),
    ("sampled", "approved by a moderator in the random review sample"),
    ("rejected", "rejected for another reason (its category stands)"),
    ("wrong_category", "rejected as the wrong category (counts against it)"),
)
# Below this share of labels a moderator has seen, the head learns the sellers' habits.
MIN_CONFIRMED_SHARE = 0.05


class Command(BaseCommand):
    help = (
        "Learn a category adaptation of the current model from the catalogue's labels and judge it on held-out "
        "listings; --apply promotes it when the held-out figures prove it better, --rollback restores the previous one."
    )
    # What ``learn`` read.
    labels: AdaptationLabels
    matches: adaptation_learning.MatchLabels

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--apply", action="store_true", help="Promote the adaptation if it passes the gate.")
        parser.add_argument("--rollback", action="store_true", help="Retire the active adaptation; the one before it serves again.")
        parser.add_argument("--batch-size", type=positive_int, default=None,
                            help="Photos per forward pass for photos without a stored embedding (default BATCH_SIZE).")
        parser.add_argument("--by", default=None, help="Who promotes (recorded with it; default: the system user).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(
        self, *args: Any, apply: bool, rollback: bool, batch_size: int | None, by: str | None, no_progress: bool,
        **options: Any,
    ) -> None:
        if rollback:
            self.rollback(apply=apply)
            return
        outcome = self.learn(batch_size=batch_size or int(clip_settings.BATCH_SIZE), progress=not no_progress)
        if not apply:
            self.stdout.write("Nothing changed: add --apply to promote it.")
            return
        if not outcome.promote:
            raise CommandError(f"Not promoted: {outcome.reason}.")
        promoted = adaptations.adaptation_promote(
            head=outcome.head, label_digest=self.labels.photos.digest(), labels=self.label_record(outcome),
            metrics={**outcome.figures, "fit": outcome.choice.__dict__, "match": outcome.match_figures},
            created_by=by or _user(), reference=drift_reference(),
        )
        self.stdout.write(self.style.SUCCESS(
            f"Promoted adaptation v{promoted.version} of {promoted.model}: serving processes use it within "
            f"CALIBRATION_CACHE_SECONDS ({clip_settings.CALIBRATION_CACHE_SECONDS:g} s)."
        ))

    def learn(self, *, batch_size: int, progress: bool) -> adaptation_learning.AdaptationOutcome:
        from tqdm import tqdm

        with tqdm(unit="photo", desc="encoding photos", disable=not progress or not sys.stderr.isatty(),
                  file=sys.stderr) as bar:
            self.labels = adaptation_labels(batch_size=batch_size, progress=bar.update)
        self.matches = match_labels()
        self.report_labels()
        try:
            outcome = adaptation_learning.adaptation_learn(photos=self.labels.photos, match_labels=self.matches)
        except ClipcheckError as exc:
            raise CommandError(exc.message)
        self.report_outcome(outcome)
        self.report_match(outcome)
        return outcome

    def report_labels(self) -> None:
        labels, photos = self.labels, self.labels.photos
        self.stdout.write(
            f"Labels for model {model_id()}: {len(photos.keys)} listings in {len(photos.categories)} categories "
            f"({labels.encoded} photos encoded now, the rest from stored embeddings)."
        )
        for key, meaning in PROVENANCE:
            self.stdout.write(f"  {labels.provenance.get(key, 0):>7}  {meaning}")
        for listing_id, reason in labels.skipped[:10]:
            self.stderr.write(f"Listing {listing_id} skipped: {reason}")
        for warning in self.label_warnings():
            self.stdout.write(self.style.WARNING(f"WARNING: {warning}"))

    def report_match(self, outcome: adaptation_learning.AdaptationOutcome) -> None:
        matches = self.matches
        approved = int(matches.matches.sum())
        self.stdout.write(
            f"\nText-photo labels (match_probability): {approved} approved, {len(matches.keys) - approved} rejected as "
            f"misleading_description or wrong_photo; {matches.sampled} from the random review sample."
        )
        for warning in label_warnings(flagged=len(matches.keys) - matches.sampled, sampled=matches.sampled,
                                      matches=approved, mismatches=len(matches.keys) - approved):
            self.stdout.write(self.style.WARNING(f"WARNING: {warning}"))
        figures = outcome.match_figures
        if figures is None:
            self.stdout.write(f"  {outcome.match_note}.")
            return
        curves = figures["category_curves"]
        self.stdout.write(
            f"  fitted: sigmoid({figures['slope']:.3f} x score + {figures['intercept']:.3f}"
            + (f"; {len(curves)} categories with a curve of their own" if curves else "")
            + f"); on {figures['pairs']} "
            f"held-out labels ECE {figures['ece']:.4f} (95 % CI {_span(figures['ece_interval'])}), Brier "
            f"{figures['brier']:.4f} (95 % CI {_span(figures['brier_interval'])})."
        )

    def label_warnings(self) -> list[str]:
        labels = self.labels
        warnings: list[str] = []
        total = sum(labels.provenance.values())
        confirmed = sum(labels.provenance.get(key, 0) for key in ("approved", "sampled", "wrong_category"))
        if total and confirmed < MIN_CONFIRMED_SHARE * total:
            warnings.append(
                f"Unconfirmed labels: moderators decided {confirmed} of {total} listings; the rest is what sellers "
                "chose, so the head learns their habits, mistakes included."
            )
        if total and labels.provenance.get("sampled", 0) == 0:
            warnings.append(
                "Biased labels: none comes from the random review sample of machine approvals; the decided "
                "listings are those the machine flagged (raise LISTINGS REVIEW_SAMPLE_RATE for unbiased ones)."
            )
        if labels.too_few:
            few = ", ".join(f"{category} ({count})" for category, count in sorted(labels.too_few.items()))
            warnings.append(
                f"Few labels: {few} have fewer than {MIN_PHOTOS_PER_CATEGORY} labelled photos and are left out; "
                "a request naming one of them is judged by the zero-shot prompts."
            )
        return warnings

    def report_outcome(self, outcome: adaptation_learning.AdaptationOutcome) -> None:
        choice = outcome.choice
        self.stdout.write(
            f"\nFitted on {outcome.trained_on} listings: blend alpha {choice.alpha:g} (0: the prompts alone, 1: the "
            f"photos alone), shrinkage {choice.shrinkage:g}; out-of-fold accuracy {choice.out_of_fold_accuracy:.3f}, "
            f"log-loss {choice.out_of_fold_log_loss:.4f}."
        )
        self.stdout.write(f"Held out: {outcome.held_out} listings; before = {outcome.before}, after = this adaptation.")
        self.stdout.write(f"  {'':<10} {'before':>8} {'95 % CI':>17} {'after':>8} {'95 % CI':>17} {'difference CI':>17}")
        for metric, row in outcome.figures["overall"].items():
            self.stdout.write(
                f"  {metric:<10} {_figure(row['before']):>8} {_span(row['before_interval']):>17} "
                f"{_figure(row['after']):>8} {_span(row['after_interval']):>17} {_span(row['difference_interval']):>17}"
            )
        self.stdout.write(
            f"Per category (accuracy: its photos whose top category is right; the gate compares those with "
            f"{MIN_CATEGORY_HELD_OUT} held out):"
        )
        self.stdout.write(f"  {'':<24} {'held out':>8} {'accuracy before -> after':>26} {'difference CI':>17} "
                          f"{'F1':>15} {'AUROC':>15} {'ECE':>15}")
        for category, row in outcome.figures["categories"].items():
            accuracy = row["accuracy"]
            others = " ".join(f"{_figure(row[metric]['before']):>7}>{_figure(row[metric]['after']):<7}"
                              for metric in ("f1", "auroc", "ece"))
            self.stdout.write(
                f"  {category:<24} {row['held_out']:>8} {_figure(accuracy['before']):>12} -> {_figure(accuracy['after']):<10}"
                f" {_span(accuracy['difference_interval']):>17} {others}"
            )
        verdict = "passes" if outcome.promote else "fails"
        self.stdout.write(f"Gate: {verdict}: {outcome.reason}.")

    def label_record(self, outcome: adaptation_learning.AdaptationOutcome) -> dict[str, Any]:
        return {
            "listings": len(self.labels.photos.keys), "categories": self.labels.photos.categories,
            "provenance": dict(self.labels.provenance), "trained_on": outcome.trained_on,
            "held_out": outcome.held_out, "left_out_categories": self.labels.too_few,
        }

    def rollback(self, *, apply: bool) -> None:
        if apply:
            raise CommandError("--rollback and --apply cannot be combined.")
        try:
            retired, restored = adaptations.adaptation_rollback()
        except ClipcheckError as exc:
            raise CommandError(exc.message)
        now = f"adaptation v{restored.version} serves again" if restored else "the zero-shot prompts judge again"
        self.stdout.write(self.style.SUCCESS(
            f"Retired adaptation v{retired.version} of {retired.model}: {now} (within CALIBRATION_CACHE_SECONDS)."
        ))


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _span(interval: Sequence[float | None]) -> str:
    low, high = interval
    return "-" if low is None else f"{low:.4f}..{high:.4f}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
