"""manage.py clip_calibrate: the mismatch threshold from labelled pairs.

Labels come from the moderators' decisions (default) or from a CSV file;
``--per-category`` adds one threshold per category with enough labels,
``--classify`` calibrates classify's prompts from the catalogue instead. The
math is ``clipcheck.calibration``. See docs/calibration.md.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clipcheck.calibration import (
    FEW_LABELS_PER_CLASS,
    Calibration,
    CalibrationError,
    OperatingPoint,
    calibrate,
    label_warnings,
)
from clipcheck.models import CalibratedThreshold
from clipcheck.services import thresholds
from clipcheck.services.calibration_data import labelled_scores_from_csv
from clipcheck.settings import clip_settings
from listings.labels import ClassifyLabels, classify_labels
from listings.management.options import fraction, non_negative_int, positive_int
from listings.selectors import ModerationLabel, moderation_labels
from listings.settings import listings_settings

CLASSIFY = CalibratedThreshold.Kind.CLASSIFY


class CsvLabel:
    """A CSV row's label: no category, no provenance to report."""

    category = ""
    sampled = True

    def __init__(self, score: float, is_match: bool) -> None:
        self.score, self.is_match = score, is_match


# A calibration label: the moderators' or a CSV row's.
Label = ModerationLabel | CsvLabel


class Command(BaseCommand):
    help = (
        "Compute the mismatch threshold from labelled pairs: the moderators' approve/reject decisions, "
        "or --csv image_path,text,label. Prints the precision-recall trade-off; --apply stores the threshold."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--csv", metavar="PATH",
            help="Labelled pairs: a CSV file with the columns image_path,text,label (match/mismatch or 1/0).",
        )
        parser.add_argument(
            "--target-precision", type=fraction, metavar="P",
            help="Also pick the highest-recall threshold whose mismatch precision is at least P; --apply stores it.",
        )
        parser.add_argument(
            "--apply", action="store_true",
            help="Store the chosen threshold (--target-precision's, else the F1-optimal one) as the default.",
        )
        parser.add_argument("--batch-size", type=positive_int, help="Images per forward pass with --csv.")
        parser.add_argument(
            "--rows", type=non_negative_int, default=20,
            help="Rows of the trade-off table (default 20; 0: every candidate threshold).",
        )
        parser.add_argument(
            "--per-category", action="store_true",
            help="Also compute one threshold per category with enough labels of both classes (else the global one "
            "serves it); --apply stores them too.",
        )
        parser.add_argument(
            "--sampled-only", action="store_true",
            help="Use only the labels of the random review sample of machine approvals (unbiased).",
        )
        parser.add_argument(
            "--classify", action="store_true",
            help="Calibrate classify's CLASSIFY_THRESHOLD (per model, and per category where labels allow) from "
            "the catalogue's categories and the moderators' wrong_category decisions.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["classify"]:
            self.handle_classify(options)
            return
        model = thresholds.model_id()
        try:
            labels, source = self.labelled_pairs(options, model)
            if options["sampled_only"]:
                labels = [label for label in labels if label.sampled]
            calibration = calibrate([(label.score, label.is_match) for label in labels])
        except CalibrationError as exc:
            raise CommandError(exc.message)
        target = options["target_precision"]
        chosen = self.report_caption(labels, source, calibration, model=model, target=target, rows=options["rows"])
        per_category = self.per_category(labels, target) if options["per_category"] else {}
        if options["apply"]:
            self.apply_caption(chosen, per_category, calibration, source=source, model=model, target=target)

    def report_caption(
        self, labels: Sequence[Label], source: str, calibration: Calibration, *, model: str, target: float | None,
        rows: int,
    ) -> OperatingPoint | None:
        """Print the labels, the table and the suggested thresholds; returns the chosen point (or None)."""
        best = calibration.best_f1
        for_target = calibration.for_precision(target) if target is not None else None
        self.stdout.write(
            f"Labels from {source} for model {model}: {calibration.matches} matches, "
            f"{calibration.mismatches} mismatches (the positive class is 'mismatch': score < threshold)."
        )
        marks = {best.threshold: "F1"}
        if for_target is not None:
            marks[for_target.threshold] = ",".join(filter(None, [marks.get(for_target.threshold), "P"]))
        self.report_provenance(labels, source, calibration)
        self.print_table(calibration, marked=marks, rows=rows)
        self.stdout.write(f"F1-optimal threshold: {self.describe(best)}")
        if target is not None:
            if for_target is None:
                self.stdout.write(f"No threshold reaches a precision of {target:g} on these labels.")
            else:
                self.stdout.write(f"Threshold for precision >= {target:g}: {self.describe(for_target)}")
        chosen = for_target if target is not None else best
        if chosen is not None:
            self.stdout.write(f"Expected at {chosen.threshold:.4f}: {self.intervals(chosen)}")
        self.stdout.write(f"Current default threshold: {thresholds.default_threshold():g} ({self.origin()}).")
        return chosen

    def apply_caption(
        self, chosen: OperatingPoint | None, per_category: Mapping[str, tuple[Calibration, OperatingPoint]],
        calibration: Calibration, *, source: str, model: str, target: float | None,
    ) -> None:
        if chosen is None:
            raise CommandError(f"Nothing applied: no threshold reaches a precision of {target:g}.")
        stored = thresholds.calibrated_threshold_apply(
            threshold=chosen.threshold, source=source, counts=self.counts(calibration, chosen, target)
        )
        self.stdout.write(self.style.SUCCESS(f"Stored threshold {stored.threshold:g} for model {model}."))
        for category, (category_calibration, point) in per_category.items():
            thresholds.calibrated_threshold_apply(
                threshold=point.threshold, source=source, category=category,
                counts=self.counts(category_calibration, point, target),
            )
            self.stdout.write(self.style.SUCCESS(
                f"Stored threshold {point.threshold:g} for category {category!r} of model {model}."
            ))
        if "THRESHOLD" in clip_settings.user_settings:
            self.stdout.write(self.style.WARNING(
                f"CLIPCHECK THRESHOLD is set explicitly ({clip_settings.THRESHOLD:g}) and wins over the stored one: "
                "unset it (and CLIPCHECK_THRESHOLD) to use the calibrated threshold."
            ))

    def labelled_pairs(self, options: Mapping[str, Any], model: str) -> tuple[Sequence[Label], str]:
        """``(labels, source)``; CSV rows have no category and count as sampled (their provenance is the file's)."""
        if options["csv"]:
            if options["per_category"] or options["sampled_only"]:
                raise CalibrationError("--per-category and --sampled-only need the moderators' labels, not --csv.")
            scores = labelled_scores_from_csv(path=options["csv"], batch_size=options["batch_size"])
            for line, reason in scores.skipped[:10]:
                self.stderr.write(f"Line {line} skipped: {reason}")
            if len(scores.skipped) > 10:
                self.stderr.write(f"... {len(scores.skipped) - 10} more rows skipped.")
            return [CsvLabel(score, is_match) for score, is_match in scores.pairs], f"csv:{options['csv']}"
        return moderation_labels(model=model), "moderation"

    def report_provenance(self, labels: Sequence[Label], source: str, calibration: Calibration) -> None:
        if source != "moderation":
            return
        sampled = sum(1 for label in labels if label.sampled)
        flagged = len(labels) - sampled
        self.stdout.write(
            f"Label provenance: {flagged} from listings the machine flagged, {sampled} from the random review "
            f"sample of its approvals (LISTINGS REVIEW_SAMPLE_RATE {listings_settings.REVIEW_SAMPLE_RATE:g})."
        )
        for warning in label_warnings(
            flagged=flagged, sampled=sampled, matches=calibration.matches, mismatches=calibration.mismatches
        ):
            self.stdout.write(self.style.WARNING(f"WARNING: {warning}"))

    def per_category(
        self, labels: Iterable[Label], target: float | None
    ) -> dict[str, tuple[Calibration, OperatingPoint]]:
        """``{category: (calibration, chosen point)}`` for the categories with enough labels of both classes."""
        by_category: defaultdict[str, list[tuple[float, bool]]] = defaultdict(list)
        for label in labels:
            by_category[label.category].append((label.score, label.is_match))
        chosen: dict[str, tuple[Calibration, OperatingPoint]] = {}
        self.stdout.write("Per category:")
        for category in sorted(by_category):
            pairs = by_category[category]
            name = category or "(no category)"
            try:
                if not category:
                    raise CalibrationError("listings without a category use the global threshold")
                calibration = calibrate(pairs)
            except CalibrationError as exc:
                self.stdout.write(f"  {name}: {len(pairs)} labels; global threshold ({exc.message})")
                continue
            point = calibration.for_precision(target) if target is not None else calibration.best_f1
            if point is None:
                self.stdout.write(f"  {name}: no threshold reaches a precision of {target:g}; global threshold")
                continue
            chosen[category] = (calibration, point)
            self.stdout.write(f"  {name}: threshold {self.describe(point)}; {self.intervals(point)}")
        return chosen

    def counts(self, calibration: Calibration, chosen: OperatingPoint, target: float | None) -> dict[str, Any]:
        return {
            "matches": calibration.matches, "mismatches": calibration.mismatches,
            "flagged_mismatches": chosen.flagged_mismatches, "flagged_matches": chosen.flagged_matches,
            "missed_mismatches": chosen.missed_mismatches, "passed_matches": chosen.passed_matches,
            "precision": round(chosen.precision, 4), "recall": round(chosen.recall, 4), "f1": round(chosen.f1, 4),
            "rule": "target_precision" if target is not None else "best_f1", "target_precision": target,
        }

    def intervals(self, point: OperatingPoint) -> str:
        precision_low, precision_high = point.precision_interval
        recall_low, recall_high = point.recall_interval
        return (
            f"mismatch precision {point.precision:.3f} (95 % CI {precision_low:.3f}-{precision_high:.3f}), "
            f"recall {point.recall:.3f} (95 % CI {recall_low:.3f}-{recall_high:.3f})"
        )

    # --classify

    def handle_classify(self, options: Mapping[str, Any]) -> None:
        model = thresholds.model_id()
        labels = classify_labels(batch_size=options["batch_size"] or int(clip_settings.BATCH_SIZE))
        for listing_id, reason in labels.skipped[:10]:
            self.stderr.write(f"Listing {listing_id} skipped: {reason}")
        if len(labels.categories) < 2:
            raise CommandError("Classify calibration needs listings in at least 2 categories.")
        try:
            calibration = calibrate(labels.all_pairs())
        except CalibrationError as exc:
            raise CommandError(exc.message)
        self.stdout.write(
            f"Classify labels for model {model} (prompt {clip_settings.PROMPT_TEMPLATE!r}): {labels.listings} "
            f"catalogue listings in {len(labels.categories)} categories, {labels.wrong_category} of them with a "
            f"category moderators rejected; {calibration.matches} 'applies' and {calibration.mismatches} "
            "'does not apply' pairs."
        )
        best = calibration.best_balanced_accuracy
        per_category = self.classify_per_category(labels)
        self.report_classify(labels, best, per_category)
        if options["apply"]:
            self.apply_classify(calibration, best, per_category, model=model)

    def classify_per_category(self, labels: ClassifyLabels) -> dict[str, OperatingPoint]:
        """``{category: point}`` for the categories with enough labels of both classes."""
        per_category: dict[str, OperatingPoint] = {}
        for category in labels.categories:
            # A category's own threshold needs many of its listings: a few
            # "applies" examples place it too close to them.
            try:
                category_calibration = calibrate(labels.pairs[category], min_per_class=FEW_LABELS_PER_CLASS)
            except CalibrationError:
                continue
            per_category[category] = category_calibration.best_balanced_accuracy
        return per_category

    def report_classify(
        self, labels: ClassifyLabels, best: OperatingPoint, per_category: Mapping[str, OperatingPoint]
    ) -> None:
        before = {category: thresholds.classify_threshold(category=category) for category in labels.categories}
        after = {category: per_category.get(category, best).threshold for category in labels.categories}
        self.stdout.write(f"Quality control before (score > 0.5 at the thresholds in force): {self.qc(labels, before)}")
        precision_low, precision_high = best.match_precision_interval
        self.stdout.write(
            f"Global classify threshold: {best.threshold:.4f}: 'applies' precision {best.match_precision:.3f} "
            f"(95 % CI {precision_low:.3f}-{precision_high:.3f}), recall {best.match_recall:.3f}."
        )
        for category, point in per_category.items():
            self.stdout.write(
                f"  {category}: {point.threshold:.4f} ('applies' precision {point.match_precision:.3f}, "
                f"recall {point.match_recall:.3f})"
            )
        fallback = [category for category in labels.categories if category not in per_category]
        if fallback:
            self.stdout.write(
                f"  global threshold for: {', '.join(fallback)} (fewer than {FEW_LABELS_PER_CLASS} labels of a class)"
            )
        self.stdout.write(f"Quality control after (on these labels): {self.qc(labels, after)}")
        if clip_settings.CLASSIFY_THRESHOLD is not None:
            self.stdout.write(self.style.WARNING(
                f"CLIPCHECK CLASSIFY_THRESHOLD is set ({clip_settings.CLASSIFY_THRESHOLD:g}) and wins over "
                "calibrated classify thresholds: unset it to use them."
            ))

    def apply_classify(
        self, calibration: Calibration, best: OperatingPoint, per_category: Mapping[str, OperatingPoint], *, model: str
    ) -> None:
        thresholds.calibrated_threshold_apply(
            threshold=best.threshold, source="catalogue", kind=CLASSIFY,
            counts=self.counts(calibration, best, None) | {"rule": "best_balanced_accuracy"},
        )
        self.stdout.write(self.style.SUCCESS(f"Stored classify threshold {best.threshold:g} for model {model}."))
        for category, point in per_category.items():
            thresholds.calibrated_threshold_apply(
                threshold=point.threshold, source="catalogue", kind=CLASSIFY, category=category,
                counts={"threshold": point.threshold, "balanced_accuracy": round(point.balanced_accuracy, 4)},
            )
        if per_category:
            self.stdout.write(self.style.SUCCESS(f"Stored classify thresholds for {len(per_category)} categories."))

    def qc(self, labels: ClassifyLabels, thresholds: Mapping[str, float]) -> str:
        """The guide's check, one expected category and ``score > 0.5``, on every labelled pair."""
        right = [(score, thresholds[c]) for c in labels.categories for score, applies in labels.pairs[c] if applies]
        wrong = [(score, thresholds[c]) for c in labels.categories for score, applies in labels.pairs[c] if not applies]
        accepted = sum(1 for score, threshold in right if score > threshold)
        refused = sum(1 for score, threshold in wrong if score <= threshold)
        total = len(right) + len(wrong)
        return (
            f"right categories accepted {accepted}/{len(right)} ({100 * accepted / max(len(right), 1):.1f} %), "
            f"wrong categories refused {refused}/{len(wrong)} ({100 * refused / max(len(wrong), 1):.1f} %), "
            f"overall {100 * (accepted + refused) / max(total, 1):.1f} %"
        )

    def print_table(self, calibration: Calibration, *, marked: Mapping[float, str], rows: int) -> None:
        points = calibration.points
        if rows and len(points) > rows:
            step = (len(points) - 1) / (rows - 1) if rows > 1 else len(points)
            keep = {round(index * step) for index in range(rows)} | {
                index for index, point in enumerate(points) if point.threshold in marked
            }
            points = [point for index, point in enumerate(points) if index in keep]
        self.stdout.write(
            f"{'':4} {'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6} "
            f"{'flagged mismatches':>18} {'flagged matches':>15} {'missed mismatches':>17} {'passed matches':>14}"
        )
        for point in points:
            self.stdout.write(
                f"{marked.get(point.threshold, ''):4} {point.threshold:>9.4f} {point.precision:>9.3f} "
                f"{point.recall:>7.3f} {point.f1:>6.3f} {point.flagged_mismatches:>18} {point.flagged_matches:>15} "
                f"{point.missed_mismatches:>17} {point.passed_matches:>14}"
            )

    def describe(self, point: OperatingPoint) -> str:
        return (
            f"{point.threshold:.4f} (precision {point.precision:.3f}, recall {point.recall:.3f}, F1 {point.f1:.3f}; "
            f"flags {point.flagged_mismatches} of the mismatches and {point.flagged_matches} matches, "
            f"misses {point.missed_mismatches} mismatches)"
        )

    def origin(self) -> str:
        if "THRESHOLD" in clip_settings.user_settings:
            return "CLIPCHECK THRESHOLD setting"
        if thresholds.calibrated_threshold(model=thresholds.model_id()) is not None:
            return "calibrated"
        return "built-in default"
