"""Drift: how far a recent window of checks has moved from the reference an adaptation was promoted with.

Pure numpy, no Django. Per category, three figures (docs/adaptation.md, "Drift"):

* the **population stability index** of the similarity scores, over
  ``SCORE_BINS`` equal bins of [0, 1]: sum over bins of
  ``(recent - reference) * ln(recent / reference)``; under 0.1 stable, 0.1-0.25
  a moderate shift, over 0.25 a major one (the usual reading);
* the **overturn rate** (moderators reversing the machine: a flag approved, a
  sampled approval rejected) with its Wilson 95 % interval, against the
  reference rate;
* the **shift of the mean photo embedding**: one minus the cosine of the
  recent and the reference means (0: the same photos on average).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from clipcheck.calibration import wilson_interval

SCORE_BINS = 20
# Below this many scores (or decisions) in the recent window a figure is not judged.
MIN_WINDOW_COUNT = 30
PSI_LIMIT = 0.25
# How far the recent overturn rate's interval may sit above the reference rate.
OVERTURN_LIMIT = 0.10
SHIFT_LIMIT = 0.05


@dataclass
class CategoryWindow:
    """One category's checks in a window: scores, moderators' decisions and overturns, photo embeddings' sum."""

    scores: list[float] = field(default_factory=list)
    decisions: int = 0
    overturns: int = 0
    embedding_sum: np.ndarray | None = None
    photos: int = 0

    def add_embedding(self, vector: npt.ArrayLike) -> None:
        vector = np.asarray(vector, dtype=np.float64)
        self.embedding_sum = vector if self.embedding_sum is None else self.embedding_sum + vector
        self.photos += 1

    def as_reference(self) -> dict[str, Any]:
        """What an adaptation stores of its window (JSON)."""
        mean = None if self.embedding_sum is None else (self.embedding_sum / self.photos).round(6).tolist()
        return {
            "score_bins": score_histogram(self.scores).tolist(), "scores": len(self.scores),
            "decisions": self.decisions, "overturns": self.overturns, "mean_embedding": mean,
        }


def score_histogram(scores: Sequence[float]) -> npt.NDArray[np.intp]:
    counts, _ = np.histogram(np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0), bins=SCORE_BINS, range=(0.0, 1.0))
    return counts


def population_stability(recent_counts: npt.ArrayLike, reference_counts: npt.ArrayLike, epsilon: float = 1e-4) -> float:
    recent = np.asarray(recent_counts, dtype=np.float64)
    reference = np.asarray(reference_counts, dtype=np.float64)
    recent = np.maximum(recent / max(recent.sum(), 1.0), epsilon)
    reference = np.maximum(reference / max(reference.sum(), 1.0), epsilon)
    return float(np.sum((recent - reference) * np.log(recent / reference)))


def embedding_shift(recent_mean: npt.ArrayLike, reference_mean: npt.ArrayLike) -> float:
    recent, reference = np.asarray(recent_mean, dtype=np.float64), np.asarray(reference_mean, dtype=np.float64)
    denominator = np.linalg.norm(recent) * np.linalg.norm(reference)
    return float(1.0 - recent @ reference / denominator) if denominator else 0.0


def category_drift(window: CategoryWindow, reference: Mapping[str, Any], *, psi_limit: float = PSI_LIMIT,
                   overturn_limit: float = OVERTURN_LIMIT, shift_limit: float = SHIFT_LIMIT) -> dict[str, Any]:
    """The figures of one category and the limits they pass: ``{"psi", "overturn_rate", ..., "alarms": [...]}``."""
    figures: dict[str, Any]
    alarms: list[str]
    figures, alarms = {"scores": len(window.scores), "decisions": window.decisions, "photos": window.photos}, []
    if len(window.scores) >= MIN_WINDOW_COUNT and reference.get("scores"):
        psi = population_stability(score_histogram(window.scores), reference["score_bins"])
        figures["psi"] = round(psi, 4)
        if psi > psi_limit:
            alarms.append(f"scores moved: PSI {psi:.3f} > {psi_limit:g}")
    reference_rate = reference["overturns"] / reference["decisions"] if reference.get("decisions") else 0.0
    figures["reference_overturn_rate"] = round(reference_rate, 4)
    if window.decisions >= MIN_WINDOW_COUNT:
        low, high = wilson_interval(window.overturns, window.decisions)
        figures["overturn_rate"] = round(window.overturns / window.decisions, 4)
        figures["overturn_interval"] = [round(low, 4), round(high, 4)]
        if low > reference_rate + overturn_limit:
            alarms.append(
                f"moderators overturn more: {window.overturns} of {window.decisions} (95 % CI {low:.3f}-{high:.3f}) "
                f"against {reference_rate:.3f}"
            )
    if window.photos >= MIN_WINDOW_COUNT and reference.get("mean_embedding") is not None:
        assert window.embedding_sum is not None  # photos were added
        shift = embedding_shift(window.embedding_sum / window.photos, reference["mean_embedding"])
        figures["embedding_shift"] = round(shift, 4)
        if shift > shift_limit:
            alarms.append(f"photos moved: mean embedding shift {shift:.4f} > {shift_limit:g}")
    figures["alarms"] = alarms
    return figures
