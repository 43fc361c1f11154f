"""Forward lanes: shared by both towers, long forwards split over the idle ones."""

import threading
import time

import numpy as np
import pytest

from clipcheck.engine import get_engine
from clipcheck.engine.lanes import SPLIT_MIN_ROWS, LanePool
from tests.support.clip_settings import set_clip_settings


class Recorder:
    """A forward that records its parts; ``barrier`` makes parts wait for each other."""

    def __init__(self, barrier=None, delay=0.0):
        self.parts = []
        self.barrier = barrier
        self.delay = delay
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def __call__(self, start, end, lane):
        with self._lock:
            self.parts.append((start, end, lane))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if self.barrier is not None:
                self.barrier.wait()
            time.sleep(self.delay)
            return np.arange(start, end, dtype=np.float32).reshape(-1, 1)
        finally:
            with self._lock:
                self.running -= 1


def test_a_long_forward_is_split_over_the_idle_lanes_and_answers_in_order():
    # Both parts must be in flight at once, or the barrier times out.
    forward = Recorder(barrier=threading.Barrier(2, timeout=5))
    rows = 2 * SPLIT_MIN_ROWS
    output = LanePool(2).run_rows(forward, rows)
    assert output[:, 0].tolist() == list(range(rows))
    assert sorted(forward.parts) == [(0, SPLIT_MIN_ROWS, 0), (SPLIT_MIN_ROWS, rows, 1)]


def test_a_short_forward_runs_whole_on_one_lane():
    forward = Recorder()
    LanePool(2).run_rows(forward, 2 * SPLIT_MIN_ROWS - 1)
    assert forward.parts == [(0, 2 * SPLIT_MIN_ROWS - 1, 0)]


def test_a_long_forward_runs_whole_while_the_other_lane_is_busy():
    pool, forward = LanePool(2), Recorder()
    with pool.take() as busy:
        pool.run_rows(forward, 4 * SPLIT_MIN_ROWS)
    assert forward.parts == [(0, 4 * SPLIT_MIN_ROWS, 1 - busy[0])]


def test_forwards_of_the_same_tower_run_on_both_lanes_at_once():
    forward = Recorder(barrier=threading.Barrier(2, timeout=5))
    pool = LanePool(2)
    callers = [threading.Thread(target=pool.run_rows, args=(forward, 1)) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(10)
    assert sorted(lane for _, _, lane in forward.parts) == [0, 1]


def test_no_more_forwards_run_at_once_than_there_are_lanes():
    pool, forward = LanePool(2), Recorder(delay=0.02)
    callers = [threading.Thread(target=pool.run_rows, args=(forward, rows)) for rows in (1, 3, 40, 1, 20, 2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(10)
    assert forward.most_running == 2
    assert sum(end - start for start, end, _ in forward.parts) == 67


def test_a_lane_is_given_back_only_once_its_part_is_done():
    pool, finished = LanePool(2), []

    def forward(start, end, lane):
        if start == 0:
            raise RuntimeError("the first part fails")
        time.sleep(0.2)
        finished.append(lane)
        return np.zeros((end - start, 1), np.float32)

    with pytest.raises(RuntimeError):
        pool.run_rows(forward, 2 * SPLIT_MIN_ROWS)
    assert finished == [1]
    with pool.take(most=2) as lanes:
        assert sorted(lanes) == [0, 1]


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_a_split_text_forward_equals_the_one_lane_forward(settings, fresh_engine, runtime):
    texts = [f"a {colour} leather bag with a strap" for colour in ("red", "green", "blue", "black", "white", "pink")] * 3
    set_clip_settings(settings, RUNTIME=runtime, NUM_THREADS=1)
    whole, _ = get_engine()._encode_text_batch(texts)
    set_clip_settings(settings, RUNTIME=runtime, NUM_THREADS=2)
    engine = get_engine()
    lanes_used = []
    text_features = engine.runtime.text_features

    def recorded(input_ids, attention_mask, lane=0):
        lanes_used.append(lane)
        return text_features(input_ids, attention_mask, lane=lane)

    engine.runtime.text_features = recorded
    split, _ = engine._encode_text_batch(texts)
    assert sorted(lanes_used) == [0, 1]
    np.testing.assert_allclose(split, whole, atol=1e-5)
