"""The engine's forward lanes: how many forwards run at once, and on which threads.

A lane runs one forward at a time, of either tower, with the lane's threads
(the runtime keeps an infer request per lane). The lanes are shared by the
image and the text batcher (``clipcheck.engine.batcher``): whichever forward
is waiting takes the next free lane, so a request's text forwards (its
passages and the attribute rewrites, most of a mismatch's work) are never
stuck behind one tower's lane while the other lane's core idles. A forward
of many rows that finds other lanes idle is split over them
(``LanePool.run_rows``): one request alone uses every lane; under load no
lane is idle and batches run whole.
"""

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np

# A forward is split over idle lanes only when each part keeps at least this
# many rows: smaller batches cost more per row (a text row costs about twice
# as much alone as in a batch of 8), which only pays while the core is idle.
SPLIT_MIN_ROWS = 6


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ForwardLanes:
    """How many forwards may run at once (``count``) and the threads of each (``threads``).

    Every lane runs either tower: an uncached request's image and text
    forwards overlap on two lanes, and when many requests queue both lanes
    work through whichever forwards are waiting, so neither tower's queue
    leaves a core idle. Together the lanes never use more than their
    ``count * threads`` threads: no forward competes with another for a core.
    """

    count: int = 1
    threads: int = 1

    @property
    def concurrent(self) -> bool:
        return self.count > 1


def forward_lanes(total_threads: int | None, *, concurrent: bool | None = None) -> ForwardLanes:
    """The lanes for ``NUM_THREADS`` (None: the cores) and ``CONCURRENT_ENCODERS``.

    With at least two threads: two lanes, each with half of them (an odd
    thread is left to the request threads, which decode and serialise
    meanwhile); with one, or ``concurrent=False``: one lane with them all.
    """
    total = int(total_threads or available_cores())
    if concurrent is None:
        concurrent = total >= 2
    if not concurrent or total < 2:
        return ForwardLanes(count=1, threads=total)
    return ForwardLanes(count=2, threads=total // 2)


class LanePool:
    """``count`` lanes; a forward takes a free one (waiting for it) and gives it back."""

    def __init__(self, count: int):
        self.count = int(count)
        self._free = list(range(self.count))
        self._condition = threading.Condition()
        # Threads for the parts of a split forward (the caller runs the first part itself).
        self._helpers = ThreadPoolExecutor(max_workers=max(1, self.count - 1), thread_name_prefix="clip-lane")

    @contextmanager
    def take(self, most: int = 1) -> Iterator[list[int]]:
        """Wait for a free lane, then take up to ``most`` of the lanes free now: a list of lane ids."""
        with self._condition:
            while not self._free:
                self._condition.wait()
            taken, self._free = self._free[:most], self._free[most:]
        try:
            yield taken
        finally:
            with self._condition:
                self._free.extend(taken)
                self._condition.notify_all()

    def wait_free(self) -> None:
        """Block until a lane is free (without taking it): a batcher forms its next batch then."""
        with self._condition:
            while not self._free:
                self._condition.wait()

    def run_rows(self, forward: Callable[[int, int, int], np.ndarray], rows: int, *,
                 timed: Callable[[], AbstractContextManager[object]] = nullcontext) -> np.ndarray:
        """``forward(start, end, lane)`` over ``rows`` rows → the (rows, dim) outputs in order.

        One part on one lane; split into parts of at least ``SPLIT_MIN_ROWS``
        rows over the lanes that are idle now. ``timed()`` wraps the forward
        once it has its lanes (the wait for a lane is not forward time).
        """
        with self.take(most=max(1, rows // SPLIT_MIN_ROWS)) as lanes, timed():
            if len(lanes) == 1:
                return forward(0, rows, lanes[0])
            bounds = np.linspace(0, rows, len(lanes) + 1).astype(int)
            parts: list[Future[np.ndarray]] = [self._helpers.submit(forward, start, end, lane)
                     for start, end, lane in zip(bounds[1:-1], bounds[2:], lanes[1:], strict=True)]
            try:
                first = forward(bounds[0], bounds[1], lanes[0])
            finally:
                wait(parts)  # a lane is given back only once its part is done
            return np.concatenate([first, *(part.result() for part in parts)])
