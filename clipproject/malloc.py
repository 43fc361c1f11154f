"""glibc malloc limits for serving workers: memory freed by request threads goes back.

Two glibc defaults make a gunicorn worker's resident memory climb with every
burst of concurrent requests, although what it holds stays the same:

* each thread that allocates while another holds the lock gets an arena of
  its own (up to 8 per core), and memory freed into an arena stays there;
* after a large block is freed, the threshold above which blocks are mapped
  (and unmapped when freed) rises to that size, so the next decode buffers of
  a 2000-px photo come from the arenas and stay resident too.

Each worker therefore bounds its arenas after the fork (``malloc_limit``), and
every few requests, after the response is sent, collects finished requests'
reference cycles and hands free pages back (``memory_release_due``).
Measured figures: docs/bench.md. The variables glibc reads itself
(``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) win: a value set in the
environment is left alone.
"""

import ctypes
import ctypes.util
import functools
import gc
import itertools
import logging
import os

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


# After every this many requests a worker collects its cyclic garbage and
# hands free malloc pages back (memory_release).
RELEASE_EVERY_REQUESTS = 8
_requests_served = itertools.count(1)


def memory_release_due():
    """Count one request served; every ``RELEASE_EVERY_REQUESTS``-th, release memory.

    Called after each response has been sent (gunicorn's ``post_request``), so
    no client waits for it. Between full collections the reference cycles of
    finished requests keep their decoded images and buffers; after they are
    collected, the arenas keep the freed pages until ``malloc_trim``. Both take
    a few milliseconds.
    """
    if next(_requests_served) % RELEASE_EVERY_REQUESTS:
        return False
    memory_release()
    return True


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
