"""The model in use and its default threshold (explicit, calibrated or built in).

The latest calibrated threshold per model is cached briefly so that the API
does not query for it on every request.
"""

import threading
import time

from django.core.signals import setting_changed
from django.db import transaction

from clipcheck import selectors
from clipcheck.models import CalibratedThreshold
from clipcheck.settings import clip_settings

# {model: (threshold or None, expires)}
_calibrated_cache = {}
_calibrated_cache_lock = threading.Lock()


def model_id():
    """The model named in stored analyses and cache keys.

    Taken from the settings, not the loaded engine, so a cached verdict is
    served without loading the model.
    """
    return str(clip_settings.MODEL)


def default_threshold():
    """The threshold used when a request or an audit names none.

    Precedence: ``CLIPCHECK["THRESHOLD"]`` when set explicitly (in settings
    or by the ``CLIPCHECK_THRESHOLD`` environment variable), else the latest
    threshold stored by ``clip_calibrate --apply`` for the current model,
    else the built-in default.
    """
    if "THRESHOLD" in clip_settings.user_settings:
        return float(clip_settings.THRESHOLD)
    calibrated = calibrated_threshold(model=model_id())
    return float(clip_settings.THRESHOLD) if calibrated is None else calibrated


def calibrated_threshold(*, model):
    """The latest calibrated threshold of ``model`` (None if there is none),
    read from the database at most once per ``CALIBRATION_CACHE_SECONDS``."""
    now = time.monotonic()
    cached = _calibrated_cache.get(model)
    if cached is not None and cached[1] > now:
        return cached[0]
    latest = selectors.calibrated_threshold_latest(model=model)
    value = None if latest is None else float(latest.threshold)
    with _calibrated_cache_lock:
        _calibrated_cache[model] = (value, now + float(clip_settings.CALIBRATION_CACHE_SECONDS))
    return value


def calibrated_threshold_forget():
    """Drop the cached calibrated thresholds (after an apply, or a settings change)."""
    with _calibrated_cache_lock:
        _calibrated_cache.clear()


def _forget_calibrated_on_settings_change(*, setting, **kwargs):
    # Another model or THRESHOLD setting: the calibrated thresholds are re-read.
    if setting == "CLIPCHECK":
        calibrated_threshold_forget()


setting_changed.connect(_forget_calibrated_on_settings_change)


def calibrated_threshold_apply(*, threshold, source, counts, model=None):
    """Store ``threshold`` as the calibrated default for ``model`` (the current one by default)."""
    calibrated = CalibratedThreshold.objects.create(
        model=model or model_id(), threshold=round(float(threshold), 4), source=source, counts=counts
    )
    # Another process's cache expires within CALIBRATION_CACHE_SECONDS.
    transaction.on_commit(calibrated_threshold_forget)
    calibrated_threshold_forget()
    return calibrated
