"""One process-wide object sized by a setting, rebuilt when the setting changes.

Admission's gate (``MAX_QUEUE``) and the decode budget
(``DECODE_MEMORY_BUDGET_BYTES``) are both read on every request and must follow
a settings change (tests, reloads) without a lock on the common path.
"""

import threading


class CapacitySingleton:
    def __init__(self, build, retire=None):
        self._build = build
        self._retire = retire
        self._lock = threading.Lock()
        self._current = None

    def get(self, capacity):
        current = self._current
        if current is not None and current.capacity == capacity:
            return current
        with self._lock:
            if self._current is None or self._current.capacity != capacity:
                if self._current is not None and self._retire is not None:
                    self._retire(self._current)
                self._current = self._build(capacity)
            return self._current
