"""Micro-batching of concurrent requests."""

import threading
import time

import numpy as np
import pytest
from PIL import Image

from clipcheck.engine import get_engine
from clipcheck.engine.batcher import MicroBatcher


def test_jobs_queued_together_share_one_forward():
    calls = []
    release = threading.Event()

    def run(payloads):
        calls.append(list(payloads))
        release.wait(5)
        return [payload * 10 for payload in payloads]

    batcher = MicroBatcher(run, max_rows=8, max_wait=0.05)
    first = batcher.submit(1, 1)  # occupies the worker
    time.sleep(0.05)
    later = [batcher.submit(value, 1) for value in (2, 3, 4)]
    release.set()
    assert [future.result(5) for future in [first, *later]] == [10, 20, 30, 40]
    assert calls == [[1], [2, 3, 4]]


def test_the_worker_waits_for_callers_already_on_their_way():
    calls = []
    batcher = MicroBatcher(lambda payloads: calls.append(payloads) or payloads, max_rows=8, max_wait=1.0)
    with batcher.reserve():  # a second caller is still preprocessing
        future = batcher.submit("a", 1)
        time.sleep(0.05)
        with batcher.reserve():
            second = batcher.submit("b", 1)
    assert (future.result(5), second.result(5)) == ("a", "b")
    assert calls == [["a", "b"]]


def test_a_lone_request_is_not_delayed():
    batcher = MicroBatcher(lambda payloads: payloads, max_rows=8, max_wait=2.0)
    started = time.monotonic()
    assert batcher.run("x", 1) == "x"
    assert time.monotonic() - started < 1.0  # far below max_wait: nobody else announced


def test_batches_never_exceed_max_rows():
    sizes = []
    gate = threading.Event()

    def run(payloads):
        gate.wait(5)
        sizes.append(sum(payloads))
        return payloads

    batcher = MicroBatcher(run, max_rows=4, max_wait=0.01)
    futures = [batcher.submit(1, 1) for _ in range(10)]
    gate.set()
    for future in futures:
        future.result(5)
    assert max(sizes) <= 4 and sum(sizes) == 10


def test_a_failing_forward_fails_only_its_batch():
    def run(payloads):
        if "bad" in payloads:
            raise RuntimeError("boom")
        return payloads

    batcher = MicroBatcher(run, max_rows=1, max_wait=0)
    with pytest.raises(RuntimeError):
        batcher.run("bad", 1)
    assert batcher.run("good", 1) == "good"


def test_concurrent_engine_calls_are_batched_and_equal_to_one_by_one(settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_WAIT_MS": 200}
    engine = get_engine()
    images = [Image.new("RGB", (40, 40), (index * 30, 40, 200 - index * 20)) for index in range(6)]
    alone = [engine.encode_images([image])[0] for image in images]
    before = sum(engine._image_batcher.batch_sizes.values())
    results = [None] * len(images)
    barrier = threading.Barrier(len(images))

    def call(index):
        barrier.wait()
        results[index] = engine.encode_images([images[index]])[0]

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    forwards = sum(engine._image_batcher.batch_sizes.values()) - before
    assert forwards < len(images)  # some requests shared a forward pass
    for together, one in zip(results, alone):
        assert float(np.dot(together, one)) > 0.9999


def test_texts_of_very_different_lengths_run_in_forwards_of_their_own():
    from clipcheck.engine.batcher import padding_groups

    assert padding_groups([]) == []
    assert padding_groups([22] * 28) == [(0, 28)]  # similar lengths: one forward
    # A request's 28 short rewrites queued with another's four 77-token passages:
    # padding the short rows to 77 tokens would cost far more than a second forward.
    assert padding_groups([22] * 28 + [77] * 4) == [(0, 28), (28, 32)]
    # A forward's own cost keeps nearly equal lengths together.
    assert padding_groups([20, 21, 22, 23]) == [(0, 4)]


def test_widths_rounded_to_a_step_are_what_the_groups_pay_for():
    from clipcheck.engine.batcher import padded_width, padding_groups

    assert [padded_width(length, 8, 77) for length in (1, 8, 9, 70, 72, 73, 77)] == [8, 8, 16, 72, 72, 77, 77]
    assert padded_width(13) == 13
    # 9 and 16 tokens cost the same once rounded to 16: one forward, where
    # exact widths would split 20 rows of 9 tokens from 20 of 16.
    assert padding_groups([9] * 20 + [16] * 20) == [(0, 20), (20, 40)]
    assert padding_groups([9] * 20 + [16] * 20, width_step=8) == [(0, 40)]


def test_token_rows_are_cut_or_padded_on_the_tokenizers_side():
    from clipcheck.engine.clip import _padded_to

    rows = np.array([[5, 6, 0, 0], [5, 6, 7, 0]])
    assert _padded_to(rows, 3, "right", 0).tolist() == [[5, 6, 0], [5, 6, 7]]
    assert _padded_to(rows, 6, "right", 9).tolist() == [[5, 6, 0, 0, 9, 9], [5, 6, 7, 0, 9, 9]]
    left = np.array([[0, 5, 6], [4, 5, 6]])
    assert _padded_to(left, 2, "left", 0).tolist() == [[5, 6], [5, 6]]
    assert _padded_to(left, 5, "left", 9).tolist() == [[9, 9, 0, 5, 6], [9, 9, 4, 5, 6]]


def test_a_batch_of_mixed_lengths_answers_like_each_text_alone(monkeypatch):
    engine = get_engine()
    short = [f"a {colour} bag" for colour in ("red", "green", "blue")]
    long = ["a very long description of a leather travel bag with a strap and two pockets " * 2]
    calls = []
    text_features = engine.runtime.text_features

    def recorded(input_ids, attention_mask, lane=0):
        calls.append(tuple(input_ids.shape))
        return text_features(input_ids, attention_mask, lane=lane)

    monkeypatch.setattr(engine.runtime, "text_features", recorded)
    mixed, _ = engine._encode_text_batch([long[0], *short])
    monkeypatch.undo()
    alone = np.concatenate([engine._encode_text_batch([text])[0] for text in [long[0], *short]])
    np.testing.assert_allclose(mixed, alone, atol=1e-5)
    # The short texts ran apart from the long one, padded to their own length.
    assert len(calls) == 2 and calls[0][0] == 3 and calls[0][1] < calls[1][1]


def test_with_two_workers_a_second_batch_runs_beside_the_first():
    both_running = threading.Barrier(2, timeout=5)

    def run(payloads):  # returns only once the other batch has started too
        both_running.wait()
        return payloads

    batcher = MicroBatcher(run, max_rows=1, max_wait=0, workers=2)  # max_rows=1: two batches
    futures = [batcher.submit(value, 1) for value in ("a", "b")]
    assert [future.result(10) for future in futures] == ["a", "b"]


def test_a_batch_is_formed_only_once_a_lane_is_free():
    lane_free, calls = threading.Event(), []
    batcher = MicroBatcher(lambda payloads: calls.append(list(payloads)) or payloads, max_rows=8, max_wait=0,
                           ready=lane_free.wait)
    futures = [batcher.submit(value, 1) for value in (1, 2, 3)]
    time.sleep(0.05)  # the worker has seen the first job but waits for a lane
    lane_free.set()
    assert [future.result(5) for future in futures] == [1, 2, 3]
    assert calls == [[1, 2, 3]]
