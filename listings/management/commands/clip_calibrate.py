"""manage.py clip_calibrate: the mismatch threshold from labelled pairs.

Labels come from the moderators' decisions (default) or from a CSV file;
the math is ``clipcheck.calibration``. See docs/audit.md.
"""

from django.core.management.base import BaseCommand, CommandError

from clipcheck.services import thresholds
from clipcheck.services.calibration_data import labelled_scores_from_csv
from clipcheck.calibration import CalibrationError, calibrate
from clipcheck.settings import clip_settings
from listings.management.options import fraction, non_negative_int, positive_int
from listings.selectors import moderation_labelled_scores


class Command(BaseCommand):
    help = (
        "Compute the mismatch threshold from labelled pairs: the moderators' approve/reject decisions, "
        "or --csv image_path,text,label. Prints the precision-recall trade-off; --apply stores the threshold."
    )

    def add_arguments(self, parser):
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

    def handle(self, *args, **options):
        model = thresholds.model_id()
        try:
            pairs, source = self.labelled_pairs(options, model)
            calibration = calibrate(pairs)
        except CalibrationError as exc:
            raise CommandError(exc.message)

        best = calibration.best_f1
        target = options["target_precision"]
        for_target = calibration.for_precision(target) if target is not None else None
        self.stdout.write(
            f"Labels from {source} for model {model}: {calibration.matches} matches, "
            f"{calibration.mismatches} mismatches (the positive class is 'mismatch': score < threshold)."
        )
        marks = {best.threshold: "F1"}
        if for_target is not None:
            marks[for_target.threshold] = ",".join(filter(None, [marks.get(for_target.threshold), "P"]))
        self.print_table(calibration, marked=marks, rows=options["rows"])
        self.stdout.write(f"F1-optimal threshold: {self.describe(best)}")
        if target is not None:
            if for_target is None:
                self.stdout.write(f"No threshold reaches a precision of {target:g} on these labels.")
            else:
                self.stdout.write(f"Threshold for precision >= {target:g}: {self.describe(for_target)}")
        self.stdout.write(f"Current default threshold: {thresholds.default_threshold():g} ({self.origin()}).")

        if not options["apply"]:
            return
        chosen = for_target if target is not None else best
        if chosen is None:
            raise CommandError(f"Nothing applied: no threshold reaches a precision of {target:g}.")
        counts = {
            "matches": calibration.matches, "mismatches": calibration.mismatches,
            "flagged_mismatches": chosen.flagged_mismatches, "flagged_matches": chosen.flagged_matches,
            "missed_mismatches": chosen.missed_mismatches, "passed_matches": chosen.passed_matches,
            "precision": round(chosen.precision, 4), "recall": round(chosen.recall, 4), "f1": round(chosen.f1, 4),
            "rule": "target_precision" if target is not None else "best_f1", "target_precision": target,
        }
        stored = thresholds.calibrated_threshold_apply(threshold=chosen.threshold, source=source, counts=counts)
        self.stdout.write(self.style.SUCCESS(f"Stored threshold {stored.threshold:g} for model {model}."))
        if "THRESHOLD" in clip_settings.user_settings:
            self.stdout.write(self.style.WARNING(
                f"CLIPCHECK THRESHOLD is set explicitly ({clip_settings.THRESHOLD:g}) and wins over the stored one: "
                "unset it (and CLIPCHECK_THRESHOLD) to use the calibrated threshold."
            ))

    def labelled_pairs(self, options, model):
        if options["csv"]:
            scores = labelled_scores_from_csv(path=options["csv"], batch_size=options["batch_size"])
            for line, reason in scores.skipped[:10]:
                self.stderr.write(f"Line {line} skipped: {reason}")
            if len(scores.skipped) > 10:
                self.stderr.write(f"... {len(scores.skipped) - 10} more rows skipped.")
            return scores.pairs, f"csv:{options['csv']}"
        return moderation_labelled_scores(model=model), "moderation"

    def print_table(self, calibration, *, marked, rows):
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

    def describe(self, point):
        return (
            f"{point.threshold:.4f} (precision {point.precision:.3f}, recall {point.recall:.3f}, F1 {point.f1:.3f}; "
            f"flags {point.flagged_mismatches} of the mismatches and {point.flagged_matches} matches, "
            f"misses {point.missed_mismatches} mismatches)"
        )

    def origin(self):
        if "THRESHOLD" in clip_settings.user_settings:
            return "CLIPCHECK THRESHOLD setting"
        if thresholds.calibrated_threshold(model=thresholds.model_id()) is not None:
            return "calibrated"
        return "built-in default"
