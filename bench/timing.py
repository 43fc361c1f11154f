"""Timing helpers shared by the benchmarks: medians over repeats, warm-up excluded.

Each repeat records wall-clock seconds and this process's CPU seconds (all threads). On a
shared machine the wall clock also counts time spent descheduled; CPU seconds do not, so the
CPU-time ratio between two variants is the steadier estimate of their relative cost (with
more than one thread it also counts OpenMP spin-waiting).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU seconds of each timed repeat of one call."""

    runs: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.runs + other.runs, self.cpu + other.cpu)

    def as_dict(self) -> dict:
        return {"median_s": self.median, "cpu_median_s": self.cpu_median, "runs_s": list(self.runs),
                "cpu_s": list(self.cpu)}


def measure(fn: Callable[[], object], *, repeats: int, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed."""
    for _ in range(warmup):
        fn()
    runs, cpu = [], []
    for _ in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - cpu0)
        runs.append(time.perf_counter() - wall0)
    return Timing(tuple(runs), tuple(cpu))


def interleaved(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Time each function once per round, ``repeats`` rounds, so drifting load hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    timings = {name: Timing((), ()) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            timings[name] += measure(fn, repeats=1, warmup=0)
    return timings
