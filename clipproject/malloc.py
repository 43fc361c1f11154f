"""glibc malloc limits for serving workers: memory freed by request threads goes back.

Two glibc defaults make a gunicorn worker's resident memory climb with every
burst of concurrent requests, although what it holds stays the same:

* each thread that allocates while another holds the lock gets an arena of
  its own (up to 8 per core), and memory freed into an arena stays there;
* after a large block is freed, the threshold above which blocks are mapped
  (and unmapped when freed) rises to that size, so the next decode buffers of
  a 2000-px photo come from the arenas and stay resident too.

Each worker therefore bounds its arenas after the fork (``malloc_limit``), and
collects finished requests' reference cycles and hands free pages back
(``memory_release``) once it has fallen idle, or every few hundred requests
under load that never lets it (``MemoryReleaser``).
Measured figures: docs/bench.md. The variables glibc reads itself
(``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) win: a value set in the
environment is left alone.
"""

import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import threading
import time

logger = logging.getLogger(__name__)

# mallopt(3) parameter numbers (malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENA_MAX = 2
# Not set by default: a fixed threshold (1 MiB tried) maps and unmaps every
# large block, and PyTorch's activations are such blocks: the torch server's
# CPU per request rose by a third for 32 MB less peak. The periodic
# malloc_trim below returns the arenas' free pages instead.
MMAP_THRESHOLD = None


def malloc_limit(*, arena_max=ARENA_MAX, mmap_threshold=MMAP_THRESHOLD, environ=None):
    """Apply the limits the environment does not set; the ones applied, by name.

    Call it in the process that serves (gunicorn's ``post_fork``), before its
    request threads start: an arena, once made, is never given up.
    """
    environ = os.environ if environ is None else environ
    wanted = {"MALLOC_ARENA_MAX": (M_ARENA_MAX, arena_max), "MALLOC_MMAP_THRESHOLD_": (M_MMAP_THRESHOLD, mmap_threshold)}
    libc = _libc()
    if libc is None:
        return {}
    applied = {}
    for name, (parameter, value) in wanted.items():
        if name in environ or value is None:
            continue
        if libc.mallopt(parameter, int(value)) != 1:
            logger.warning("mallopt(%s, %s) was refused", name, value)
            continue
        applied[name] = int(value)
    return applied


# A worker releases memory once no request has been in flight for this long
# (after a burst, off every request's path)...
RELEASE_IDLE_SECONDS = 1.0
# ...and, under load that never lets it fall idle, after every this many
# requests (in the thread that served the last one, after its response).
# The release holds the GIL for a full collection (tens of ms with Django,
# OpenVINO and the caches loaded): every 8 requests, that stalled the other
# request threads often enough to cost 8 concurrent clients about a tenth of
# their throughput (docs/bench.md).
RELEASE_EVERY_REQUESTS = 256


class MemoryReleaser:
    """When a serving worker runs ``memory_release``: idle, or every ``every_requests``.

    gunicorn's ``pre_request`` and ``post_request`` hooks call ``request_started``
    and ``request_finished``; a daemon thread (``start``) polls ``release_if_idle``.
    """

    def __init__(self, *, idle_seconds=RELEASE_IDLE_SECONDS, every_requests=RELEASE_EVERY_REQUESTS,
                 release=None, clock=time.monotonic):
        self.idle_seconds = idle_seconds
        self.every_requests = every_requests
        self._release = release  # None: memory_release
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._served_since_release = 0
        self._last_finished = clock()
        self._thread = None

    def request_started(self):
        with self._lock:
            self._in_flight += 1

    def request_finished(self):
        """Count a request whose response was sent; True when it released (the busy fallback)."""
        def count():
            self._in_flight = max(0, self._in_flight - 1)
            self._served_since_release += 1
            self._last_finished = self._clock()
            return self._served_since_release >= self.every_requests

        return self._release_when(count)

    def release_if_idle(self):
        """Release when requests were served since the last release and none has been in
        flight for ``idle_seconds``; True when it did."""
        return self._release_when(lambda: self._in_flight == 0 and self._served_since_release > 0
                                  and self._clock() - self._last_finished >= self.idle_seconds)

    def _release_when(self, due):
        """``due()`` under the lock; when true, the count starts again and memory is released (outside it)."""
        with self._lock:
            released = due()
            if released:
                self._served_since_release = 0
        if released:
            (self._release or memory_release)()
        return released

    def start(self):
        """Poll for idleness in a daemon thread (call it in the worker, after the fork)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._poll, name="memory-release", daemon=True)
            self._thread.start()

    def _poll(self):
        while True:
            time.sleep(self.idle_seconds / 2)
            try:
                self.release_if_idle()
            except Exception:  # a failed release must not stop the next ones
                logger.exception("memory release failed")


# The serving worker's (gunicorn.conf.py).
memory_releaser = MemoryReleaser()


def memory_release():
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc():
    """glibc's ``mallopt``, or None elsewhere (musl, macOS): the limits are glibc's."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc
