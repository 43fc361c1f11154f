"""Threshold calibration from labelled (similarity_score, is_match) pairs.

The detector flags a pair as a mismatch when ``score < threshold``; the
positive class is therefore "mismatch". Candidate thresholds sit halfway
between consecutive distinct scores, so each one separates the pairs
differently and none coincides with a labelled score.
"""

from dataclasses import dataclass

from clipcheck.errors import ClipcheckError

MIN_LABELS_PER_CLASS = 5


class CalibrationError(ClipcheckError):
    code = "calibration_impossible"


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    flagged_mismatches: int  # true positives: mismatches with score < threshold
    flagged_matches: int  # false positives: matches with score < threshold
    missed_mismatches: int  # false negatives
    passed_matches: int  # true negatives

    @property
    def precision(self):
        flagged = self.flagged_mismatches + self.flagged_matches
        return self.flagged_mismatches / flagged if flagged else 1.0

    @property
    def recall(self):
        mismatches = self.flagged_mismatches + self.missed_mismatches
        return self.flagged_mismatches / mismatches if mismatches else 0.0

    @property
    def f1(self):
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True)
class Calibration:
    points: list  # OperatingPoint per candidate threshold, ascending
    matches: int
    mismatches: int

    @property
    def best_f1(self):
        # Ties go to the threshold with the widest margin on both sides: the middle one.
        best = max(point.f1 for point in self.points)
        tied = [point for point in self.points if point.f1 == best]
        return tied[len(tied) // 2]

    def for_precision(self, target):
        """The highest-recall threshold whose precision is at least ``target`` (None if none)."""
        eligible = [point for point in self.points if point.flagged_mismatches and point.precision >= target]
        return max(eligible, key=lambda point: (point.recall, -point.threshold)) if eligible else None


def calibrate(pairs, *, min_per_class=MIN_LABELS_PER_CLASS):
    """``pairs``: iterable of (similarity_score, is_match). Returns a ``Calibration``."""
    pairs = [(float(score), bool(is_match)) for score, is_match in pairs]
    matches = sum(1 for _, is_match in pairs if is_match)
    mismatches = len(pairs) - matches
    if matches < min_per_class or mismatches < min_per_class:
        raise CalibrationError(
            f"Calibration needs at least {min_per_class} labelled matches and {min_per_class} labelled "
            f"mismatches; have {matches} matches and {mismatches} mismatches."
        )
    points = [
        _operating_point(pairs, threshold, matches=matches, mismatches=mismatches)
        for threshold in _candidate_thresholds(pairs)
    ]
    return Calibration(points=points, matches=matches, mismatches=mismatches)


def _candidate_thresholds(pairs):
    """Below, between and above the distinct scores (rounded to 4 decimals, within [0, 1]), ascending."""
    scores = sorted({score for score, _ in pairs})
    candidates = [scores[0] - 1e-4] + [(low + high) / 2 for low, high in zip(scores, scores[1:])] + [scores[-1] + 1e-4]
    return sorted({min(max(round(candidate, 4), 0.0), 1.0) for candidate in candidates})


def _operating_point(pairs, threshold, *, matches, mismatches):
    flagged_mismatches = sum(1 for score, is_match in pairs if score < threshold and not is_match)
    flagged_matches = sum(1 for score, is_match in pairs if score < threshold and is_match)
    return OperatingPoint(
        threshold=threshold,
        flagged_mismatches=flagged_mismatches,
        flagged_matches=flagged_matches,
        missed_mismatches=mismatches - flagged_mismatches,
        passed_matches=matches - flagged_matches,
    )
