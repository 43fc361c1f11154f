"""Micro-batching: requests that arrive together share one forward pass.

Request threads decode and preprocess in parallel, then hand their tensors to
a batcher; a worker thread merges whatever is queued (up to ``max_rows``
rows, waiting at most ``max_wait`` seconds, and only while more callers are
known to be on their way) and runs one batched forward. With several
``workers`` (one per engine lane) a second batch starts while the first runs,
but only once ``ready()`` says a lane is free: until then jobs keep queueing
and join the next batch. How many callers may queue, and how long they wait,
is bounded by admission control (``clipcheck.engine.admission``) around the
callers.
"""

import collections
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Job:
    payload: Any
    rows: int
    future: Future[Any] = field(default_factory=Future)


class MicroBatcher:
    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], *, max_rows: int, max_wait: float,
                 name: str = "batcher", workers: int = 1, ready: Callable[[], None] = lambda: None):
        """``run_batch(payloads) -> outputs``, one output per payload, in order;
        ``ready()`` blocks until a forward could start (a free lane)."""
        self._run_batch = run_batch
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.name = name
        self.workers = max(1, int(workers))
        self._ready = ready
        self._jobs: collections.deque[_Job] = collections.deque()
        self._expected = 0  # callers that reserved a place but haven't submitted yet
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.batch_sizes: collections.Counter[int] = collections.Counter()  # rows per forward pass, for diagnostics

    @contextmanager
    def reserve(self) -> Iterator["MicroBatcher"]:
        """Announce a job before preparing its payload: while the caller holds
        the reservation the worker knows another job is coming and may wait
        for it."""
        with self._condition:
            self._expected += 1
        try:
            yield self
        finally:
            with self._condition:
                self._expected -= 1
                self._condition.notify_all()

    def submit(self, payload: Any, rows: int) -> Future[Any]:
        """Queue a payload (inside ``reserve``); returns a Future of its output."""
        job = _Job(payload=payload, rows=rows)
        with self._condition:
            self._ensure_worker()
            self._jobs.append(job)
            self._condition.notify_all()
        return job.future

    def run(self, payload: Any, rows: int) -> Any:
        """Reserve, submit and wait for one payload's output."""
        with self.reserve():
            future = self.submit(payload, rows)
        return future.result()

    def _ensure_worker(self) -> None:
        # Started lazily, in the process that uses them (threads don't survive fork).
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next_batch(self) -> tuple[list[_Job], int]:
        with self._condition:
            while not self._jobs:
                self._condition.wait()
        # Formed only once it could run: jobs arriving while every lane is
        # busy join this batch instead of waiting behind a small one.
        self._ready()
        with self._condition:
            if not self._jobs:  # another worker took them meanwhile
                return [], 0
            deadline = time.monotonic() + self.max_wait
            while (
                self._expected > 0
                and sum(job.rows for job in self._jobs) < self.max_rows
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._condition.wait(remaining)
            batch: list[_Job] = []
            rows = 0
            while self._jobs and (not batch or rows + self._jobs[0].rows <= self.max_rows):
                job = self._jobs.popleft()
                if job.future.set_running_or_notify_cancel():  # skip callers that gave up
                    batch.append(job)
                    rows += job.rows
            return batch, rows

    def _work(self) -> None:
        while True:
            batch, rows = self._next_batch()
            if not batch:
                continue
            self.batch_sizes[rows] += 1
            try:
                outputs = self._run_batch([job.payload for job in batch])
            except BaseException as exc:  # delivered to every caller of this batch
                for job in batch:
                    job.future.set_exception(exc)
                continue
            for job, output in zip(batch, outputs, strict=False):
                job.future.set_result(output)



# A forward's fixed cost in padded tokens (one text forward costs about this
# much more than its rows alone: measured on ViT-B/32's text tower, about one
# 20-token row).
FORWARD_OVERHEAD_TOKENS = 20


def padded_width(length: int, step: int = 1, limit: int | None = None) -> int:
    """``length`` rounded up to a multiple of ``step``, at most ``limit``."""
    width = -(-int(length) // step) * step
    return min(width, limit) if limit else width


def padding_groups(lengths: Sequence[int], *, overhead: int = FORWARD_OVERHEAD_TOKENS, width_step: int = 1,
                   limit: int | None = None) -> list[tuple[int, int]]:
    """Consecutive groups ``[(start, end), ...]`` of ascending ``lengths`` to run as one forward each.

    A text forward pads every row to its longest (rounded up to a multiple of
    ``width_step``, at most ``limit``), so one forward over a merged batch (a
    request's 20-token rewrites beside another's 77-token passages) would pay
    for the padding. The groups minimise padded tokens plus ``overhead`` per
    forward (an exact partition, O(n²) for the batch's at most ``max_rows`` rows).
    """
    count = len(lengths)
    best = [0.0] + [float("inf")] * count  # best[end]: cost of the rows before end
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        width = padded_width(lengths[end - 1], width_step, limit)
        for start in range(end):
            cost = best[start] + overhead + (end - start) * width
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], count
    while end > 0:
        groups.append((cut[end], end))
        end = cut[end]
    return groups[::-1]
