"""Reads of stored analyses and embeddings."""

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet

from clipcheck.models import Adaptation, Analysis, CalibratedThreshold, ImageEmbedding
from clipcheck.vectors import stored_vector_intact

# ``(image_sha256, text_sha256, threshold)``
AnalysisKey = tuple[str, str, float]


def analyses_cached(
    *, keys: Iterable[AnalysisKey], model: str, rules: str | None = None
) -> dict[AnalysisKey, Analysis]:
    """Earlier analyses for ``(image_sha256, text_sha256, threshold)`` keys under ``model``.

    Returns ``{key: Analysis}`` for the keys found. Only computed rows are
    candidates (a cached row copies one), which keeps the scan short for
    popular images; the newest wins.
    """
    keys = set(keys)
    if not keys:
        return {}
    candidates = Analysis.objects.filter(
        model=model,
        cached=False,
        **({} if rules is None else {"rules": rules}),
        image_sha256__in={image_sha256 for image_sha256, _, _ in keys},
        text_sha256__in={text_sha256 for _, text_sha256, _ in keys},
    ).order_by("id")
    found: dict[AnalysisKey, Analysis] = {}
    for analysis in candidates:
        key = (analysis.image_sha256, analysis.text_sha256, analysis.threshold)
        if key in keys:
            found[key] = analysis
    return found


# Values of a stored layout: an 8x8 RGB thumbnail (clipcheck.nearduplicates.LAYOUT_SIZE).
LAYOUT_VALUES = 8 * 8 * 3

# Hashes per query: a catalogue-wide read (clip_adapt, clip_drift) stays under SQLite's bound on query parameters.
HASHES_PER_QUERY = 2000


def image_embeddings_get(*, hashes: Iterable[str], model: str) -> dict[str, npt.NDArray[np.float32]]:
    """Stored embeddings ``{sha256: np.ndarray}`` of the given image hashes under ``model``
    (a corrupt one is reported and left out: the caller computes it as if it were missing)."""
    hashes = list(set(hashes))
    found: dict[str, npt.NDArray[np.float32]] = {}
    for start in range(0, len(hashes), HASHES_PER_QUERY):
        rows = ImageEmbedding.objects.filter(model=model, sha256__in=hashes[start:start + HASHES_PER_QUERY])
        found.update(
            (row.sha256, row.as_array()) for row in rows
            if stored_vector_intact(sha256=row.sha256, model=model, data=bytes(row.vector), dim=row.dim)
        )
    return found


def image_layouts_get(*, hashes: Iterable[str], model: str) -> dict[str, npt.NDArray[np.float32]]:
    """Stored layouts ``{sha256: np.ndarray}`` of the given image hashes under ``model``
    (images stored before layouts were kept are missing, and so are corrupt ones)."""
    rows = ImageEmbedding.objects.filter(model=model, sha256__in=set(hashes), layout__isnull=False)
    return {
        row.sha256: row.layout_array() for row in rows.only("sha256", "layout")
        if stored_vector_intact(sha256=row.sha256, model=model, data=bytes(row.layout), dim=LAYOUT_VALUES,
                                kind="layout")
    }


def image_hashes_without_layout(*, hashes: Iterable[str], model: str) -> set[str]:
    """The given hashes stored under ``model`` without a layout."""
    return set(
        ImageEmbedding.objects.filter(model=model, sha256__in=set(hashes), layout__isnull=True)
        .values_list("sha256", flat=True)
    )


def analyses_for_subject(*, subject: Model) -> QuerySet[Analysis]:
    """The analyses stored for one object, newest first."""
    return Analysis.objects.filter(
        subject_type=ContentType.objects.get_for_model(subject), subject_id=str(subject.pk)
    )


def calibrated_threshold_latest(
    *, model: str, kind: Any = CalibratedThreshold.Kind.CAPTION, category: str = ""
) -> CalibratedThreshold | None:
    """The latest ``CalibratedThreshold`` stored for ``model``, ``kind`` and ``category`` ("" = global), or None.

    ``kind``: a ``CalibratedThreshold.Kind`` member (``Any``: without Django's stubs mypy reads it as a tuple).
    """
    return (
        CalibratedThreshold.objects.filter(model=model, kind=kind, category=category)
        .order_by("-created_at", "-id")
        .first()
    )


def calibrated_category_thresholds(*, model: str, kind: Any = CalibratedThreshold.Kind.CAPTION) -> dict[str, float]:
    """``{category: threshold}``: the latest calibrated threshold of each category of ``model``."""
    rows = (
        CalibratedThreshold.objects.filter(model=model, kind=kind)
        .exclude(category="")
        .order_by("category", "-created_at", "-id")
        .values_list("category", "threshold")
    )
    latest: dict[str, float] = {}
    for category, threshold in rows:
        latest.setdefault(category, float(threshold))
    return latest


def adaptation_active_get(*, model: str) -> Adaptation | None:
    """The active ``Adaptation`` of ``model``, or None."""
    return Adaptation.objects.filter(model=model, active=True).first()


def adaptation_before(*, model: str, version: int) -> Adaptation | None:
    """The latest ``Adaptation`` of ``model`` older than ``version``, or None."""
    return Adaptation.objects.filter(model=model, version__lt=version).order_by("-version").first()
