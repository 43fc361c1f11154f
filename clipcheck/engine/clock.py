"""The measured forward time per row that admission sheds on.

Its own module, free of Django, because the engine (usable without Django
settings) reports to it and admission reads it.
"""

import threading
from collections.abc import Callable


class ForwardClock:
    """Exponentially weighted mean of the model's forward time per row.

    Each forward pass (any runtime, image or text) reports its duration and
    batch rows; a row of a batched forward costs less than a forward of its
    own, which is what lets a queue of requests drain faster than one by one.
    """

    def __init__(self, weight: float = 0.2):
        self.weight = weight
        self._seconds_per_row: float | None = None
        self._lock = threading.Lock()

    def observe(self, seconds: float, rows: int) -> None:
        sample = seconds / max(int(rows), 1)
        with self._lock:
            previous = self._seconds_per_row
            self._seconds_per_row = sample if previous is None else previous + self.weight * (sample - previous)

    @property
    def seconds_per_row(self) -> float:
        """0 until a forward has been measured: nothing to shed on yet."""
        return self._seconds_per_row or 0.0

    def reset(self) -> None:
        with self._lock:
            self._seconds_per_row = None


forward_clock = ForwardClock()


# Who wants to know how long each model computation took (the request
# middleware counts it toward its request's model_ms). The engine reports;
# it never imports its listeners, so it stays free of the HTTP layer.
_model_time_listeners: list[Callable[[float], None]] = []


def model_time_subscribe(listener: Callable[[float], None]) -> None:
    """Call ``listener(milliseconds)`` after each model computation admission runs."""
    if listener not in _model_time_listeners:
        _model_time_listeners.append(listener)


def model_time_report(milliseconds: float) -> None:
    for listener in _model_time_listeners:
        listener(milliseconds)
