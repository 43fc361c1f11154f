"""Threshold calibration from labelled (similarity_score, is_match) pairs.

The detector flags a pair as a mismatch when ``score < threshold``; the
positive class is therefore "mismatch". Candidate thresholds sit halfway
between consecutive distinct scores, so each one separates the pairs
differently and none coincides with a labelled score.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clipcheck.errors import ClipcheckError

MIN_LABELS_PER_CLASS = 5
# Below this many labels of a class the confidence intervals are too wide to trust.
FEW_LABELS_PER_CLASS = 30
# Below this many labels from the random review sample, the labels are
# mostly the machine's flags and biased (see ``label_warnings``).
MIN_SAMPLED_LABELS = 20


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
    def precision(self) -> float:
        flagged = self.flagged_mismatches + self.flagged_matches
        return self.flagged_mismatches / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        mismatches = self.flagged_mismatches + self.missed_mismatches
        return self.flagged_mismatches / mismatches if mismatches else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    @property
    def precision_interval(self) -> tuple[float, float]:
        """95 % Wilson interval of the mismatch precision."""
        return wilson_interval(self.flagged_mismatches, self.flagged_mismatches + self.flagged_matches)

    @property
    def recall_interval(self) -> tuple[float, float]:
        return wilson_interval(self.flagged_mismatches, self.flagged_mismatches + self.missed_mismatches)

    @property
    def match_precision(self) -> float:
        """Of the pairs at or above the threshold (judged a match), the share that are matches."""
        passed = self.passed_matches + self.missed_mismatches
        return self.passed_matches / passed if passed else 1.0

    @property
    def match_precision_interval(self) -> tuple[float, float]:
        return wilson_interval(self.passed_matches, self.passed_matches + self.missed_mismatches)

    @property
    def match_recall(self) -> float:
        matches = self.passed_matches + self.flagged_matches
        return self.passed_matches / matches if matches else 0.0

    @property
    def balanced_accuracy(self) -> float:
        mismatches = self.flagged_mismatches + self.missed_mismatches
        matches = self.passed_matches + self.flagged_matches
        if not mismatches or not matches:
            return 0.0
        return (self.flagged_mismatches / mismatches + self.passed_matches / matches) / 2


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) without observations."""
    if total <= 0:
        return 0.0, 1.0
    proportion = successes / total
    denominator = 1 + z * z / total
    centre = (proportion + z * z / (2 * total)) / denominator
    half = z * math.sqrt(proportion * (1 - proportion) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def label_warnings(*, flagged: int, sampled: int, matches: int, mismatches: int) -> list[str]:
    """Why these labels may mislead: biased provenance, too few of a class.

    Labels from items the machine flagged all sit below the threshold then
    in force: the matches above it are never seen, and the threshold that
    best separates such labels is biased low. Only the random review sample
    of machine approvals (``sampled``) brings the other side.
    """
    warnings = []
    total = flagged + sampled
    if total and sampled < MIN_SAMPLED_LABELS:
        warnings.append(
            f"Biased labels: {flagged} of {total} come from items the machine flagged and only {sampled} from "
            f"the random review sample of approvals (at least {MIN_SAMPLED_LABELS} wanted). Flagged items all "
            "scored below the threshold then in force, so the suggested threshold is biased low. Raise the review "
            "sample rate or wait for more sampled decisions; --sampled-only calibrates on those alone."
        )
    if min(matches, mismatches) < FEW_LABELS_PER_CLASS:
        warnings.append(
            f"Few labels: {matches} matches and {mismatches} mismatches (at least {FEW_LABELS_PER_CLASS} of each "
            "wanted); the confidence intervals below are wide."
        )
    return warnings


@dataclass(frozen=True)
class Calibration:
    points: list[OperatingPoint]  # one per candidate threshold, ascending
    matches: int
    mismatches: int

    @property
    def best_f1(self) -> OperatingPoint:
        # Ties go to the threshold with the widest margin on both sides: the middle one.
        best = max(point.f1 for point in self.points)
        tied = [point for point in self.points if point.f1 == best]
        return tied[len(tied) // 2]

    @property
    def best_balanced_accuracy(self) -> OperatingPoint:
        """The threshold right on the largest share of each class (ties: the middle one)."""
        best = max(point.balanced_accuracy for point in self.points)
        tied = [point for point in self.points if point.balanced_accuracy == best]
        return tied[len(tied) // 2]

    def for_precision(self, target: float) -> OperatingPoint | None:
        """The highest-recall threshold whose precision is at least ``target`` (None if none)."""
        eligible = [point for point in self.points if point.flagged_mismatches and point.precision >= target]
        return max(eligible, key=lambda point: (point.recall, -point.threshold)) if eligible else None


def calibrate(pairs: Iterable[tuple[float, bool]], *, min_per_class: int = MIN_LABELS_PER_CLASS) -> Calibration:
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


def _candidate_thresholds(pairs: Iterable[tuple[float, bool]]) -> list[float]:
    """Below, between and above the distinct scores (rounded to 4 decimals, within [0, 1]), ascending."""
    scores = sorted({score for score, _ in pairs})
    candidates = [scores[0] - 1e-4] + [(low + high) / 2 for low, high in zip(scores, scores[1:])] + [scores[-1] + 1e-4]
    return sorted({min(max(round(candidate, 4), 0.0), 1.0) for candidate in candidates})


def _operating_point(
    pairs: Sequence[tuple[float, bool]], threshold: float, *, matches: int, mismatches: int
) -> OperatingPoint:
    flagged_mismatches = sum(1 for score, is_match in pairs if score < threshold and not is_match)
    flagged_matches = sum(1 for score, is_match in pairs if score < threshold and is_match)
    return OperatingPoint(
        threshold=threshold,
        flagged_mismatches=flagged_mismatches,
        flagged_matches=flagged_matches,
        missed_mismatches=mismatches - flagged_mismatches,
        passed_matches=matches - flagged_matches,
    )
