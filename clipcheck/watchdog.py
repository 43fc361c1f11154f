"""A stall watchdog for commands that own their process (``clip_audit``, ``clip_demo``).

A command that waits for the model must not wait forever. A forward stuck
inside native code may hold the GIL, and then no Python thread runs again:
not the waiting thread's timeout, not a timer. So the watchdog has two
stages, re-armed by every ``progress()``:

1. past ``seconds`` without progress a timer thread writes one line saying
   what stalled and for how long, every thread's stack, and ends the process
   with ``EXIT_STATUS``;
2. should that thread never run (the GIL held), faulthandler's own watchdog
   (a C thread that needs no GIL) writes every thread's stack ``GRACE_SECONDS``
   later and ends the process with status 1.

Either way the command exits non-zero with the stacks on stderr, where a
cron job or an operator sees them (docs/audit.md). ``seconds`` of 0 or None
turns the watchdog off.
"""

import faulthandler
import os
import sys
import threading
from typing import TextIO, cast

EXIT_STATUS = 3
GRACE_SECONDS = 10


class StallWatchdog:
    """``with StallWatchdog(600, what="clip_audit") as watchdog: ... watchdog.progress()``."""

    def __init__(self, seconds: float | None, *, what: str) -> None:
        self.seconds = float(seconds or 0)
        self.what = what
        # The process's own stderr (faulthandler needs a file descriptor; a
        # command's stderr may be a wrapper or, under test, a buffer).
        self.stream = cast(TextIO, sys.__stderr__)  # None only without a console, where commands do not run
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> "StallWatchdog":
        self.progress()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def progress(self, *_ignored: object) -> None:
        """Work moved on: the limit counts from now (accepts and ignores callback arguments)."""
        if self.seconds <= 0:
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.seconds, self._stalled)
            self._timer.daemon = True
            self._timer.start()
            faulthandler.dump_traceback_later(self.seconds + GRACE_SECONDS, exit=True, file=self.stream)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                faulthandler.cancel_dump_traceback_later()

    def _stalled(self) -> None:
        self.stream.write(
            f"{self.what} made no progress for {self.seconds:g} s: stopped with status {EXIT_STATUS}. "
            "Every thread's stack follows (the one waiting on the model shows where it stalled).\n"
        )
        self.stream.flush()
        faulthandler.dump_traceback(file=self.stream, all_threads=True)
        self.stream.flush()
        os._exit(EXIT_STATUS)
