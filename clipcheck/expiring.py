"""Values read from the database and kept for ``CALIBRATION_CACHE_SECONDS``.

Calibrated thresholds and the active adaptation are read on every request's
path: each process keeps what it read for that long, so a change made by
another process (``clip_calibrate --apply``, ``clip_adapt``) reaches it within
that time, without a restart. A ``CLIPCHECK`` settings change (another model,
tests) drops everything at once.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.core.signals import setting_changed

from clipcheck.settings import clip_settings

T = TypeVar("T")


class ExpiringCache:
    def __init__(self) -> None:
        self._values: dict[Hashable, tuple[Any, float]] = {}  # key -> (value, expires)
        self._lock = threading.Lock()
        setting_changed.connect(self._on_settings_change, weak=False)

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The value kept for ``key``, or ``load()`` (None included) kept from now on."""
        now = time.monotonic()
        kept = self._values.get(key)
        if kept is not None and kept[1] > now:
            return kept[0]
        value = load()
        with self._lock:
            self._values[key] = (value, now + float(clip_settings.CALIBRATION_CACHE_SECONDS))
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def _on_settings_change(self, *, setting: str, **kwargs: Any) -> None:
        if setting == "CLIPCHECK":
            self.clear()
