"""The model in use and its thresholds (explicit, calibrated or built in).

Caption thresholds may be calibrated per category and classify thresholds
per model and category (``clip_calibrate``, docs/calibration.md); the latest
calibrated thresholds are cached briefly so that the API does not query for
them on every request.
"""

from pathlib import Path, PurePath

from django.db import transaction

from clipcheck import selectors
from clipcheck.expiring import ExpiringCache
from clipcheck.models import CalibratedThreshold
from clipcheck.settings import clip_settings


def model_id():
    """The model named in stored analyses and cache keys.

    Taken from the settings, not the loaded engine, so a cached verdict is
    served without loading the model.
    """
    return str(clip_settings.MODEL)


def model_shown(model=None, *, staff):
    """The model as an answer names it: staff see ``model`` (the current one by default) as set; everyone else a
    hub id as it is and a local checkpoint by its directory's name only (its path is the server's business)."""
    model = model_id() if model is None else model
    if staff:
        return model
    path = PurePath(model)
    return path.name if path.is_absolute() or model.startswith(".") or Path(model).is_dir() else model


# (model, kind, category) -> threshold or None
_calibrated = ExpiringCache()

CAPTION, CLASSIFY = CalibratedThreshold.Kind.CAPTION, CalibratedThreshold.Kind.CLASSIFY


def default_threshold(*, category=""):
    """The caption threshold used when a request or an audit names none.

    Precedence: ``CLIPCHECK["THRESHOLD"]`` when set explicitly (in settings
    or by the ``CLIPCHECK_THRESHOLD`` environment variable), else the latest
    threshold stored by ``clip_calibrate --per-category --apply`` for the
    current model and ``category``, else the latest global one stored by
    ``clip_calibrate --apply``, else the built-in default.
    """
    if "THRESHOLD" in clip_settings.user_settings:
        return float(clip_settings.THRESHOLD)
    model = model_id()
    calibrated = calibrated_threshold(model=model, category=category) if category else None
    if calibrated is None:
        calibrated = calibrated_threshold(model=model)
    return float(clip_settings.THRESHOLD) if calibrated is None else calibrated


def category_thresholds(*, model=None):
    """``{category: threshold}`` of the categories with a calibrated caption
    threshold for ``model``; empty when ``CLIPCHECK["THRESHOLD"]`` is set
    explicitly (it wins over every calibrated threshold)."""
    if "THRESHOLD" in clip_settings.user_settings:
        return {}
    return selectors.calibrated_category_thresholds(model=model or model_id())


def classify_threshold(*, category=""):
    """The similarity at which ``category``'s classify score is 0.5.

    Precedence: ``CLIPCHECK["CLASSIFY_THRESHOLD"]`` when set, else the latest
    classify threshold stored by ``clip_calibrate --classify --apply`` for
    the current model and this category, else its global classify
    threshold, else the caption threshold (``default_threshold``).
    """
    configured = clip_settings.CLASSIFY_THRESHOLD
    if configured is not None:
        return float(configured)
    model = model_id()
    calibrated = calibrated_threshold(model=model, kind=CLASSIFY, category=category) if category else None
    if calibrated is None:
        calibrated = calibrated_threshold(model=model, kind=CLASSIFY)
    return default_threshold() if calibrated is None else calibrated


def calibrated_threshold(*, model, kind=CAPTION, category=""):
    """The latest calibrated threshold of ``model`` for ``kind`` and ``category``
    ("" = global; None if there is none), read from the database at most once
    per ``CALIBRATION_CACHE_SECONDS``."""

    def latest_value():
        latest = selectors.calibrated_threshold_latest(model=model, kind=kind, category=category)
        return None if latest is None else float(latest.threshold)

    return _calibrated.get((model, str(kind), category), latest_value)


def calibrated_threshold_forget():
    """Drop the cached calibrated thresholds (after an apply; a settings change drops them too)."""
    _calibrated.clear()


def calibrated_threshold_apply(*, threshold, source, counts, model=None, kind=CAPTION, category=""):
    """Store ``threshold`` as the calibrated ``kind`` threshold of ``model`` (the
    current one by default) for ``category`` ("" = the model's global one)."""
    calibrated = CalibratedThreshold.objects.create(
        model=model or model_id(), threshold=round(float(threshold), 4), source=source, counts=counts,
        kind=kind, category=category,
    )
    # Another process's cache expires within CALIBRATION_CACHE_SECONDS.
    transaction.on_commit(calibrated_threshold_forget)
    calibrated_threshold_forget()
    return calibrated
