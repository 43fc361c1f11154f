"""Admission control: bounded in-flight inferences, a time budget, contained failures."""

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from clipcheck import metrics
from clipcheck.engine.admission import InferenceGate, run_inference
from clipcheck.engine.clock import ForwardClock, forward_clock
from clipcheck.errors import ImageRejected, InferenceFailed, InferenceTimeout, ModelBusy
from clipcheck.middleware import ModelTimer, model_time_ms
from tests.support.images import image_bytes


def blocking_compute(release, started=None):
    def compute():
        if started is not None:
            started.set()
        release.wait(10)
        return "done"

    return compute


def occupy(gate, rows=1):
    """Starts an inference of ``rows`` rows that holds one of the gate's slots until released."""
    release, started = threading.Event(), threading.Event()
    thread, outcome = run_in_thread(
        lambda: gate.run(blocking_compute(release, started), wait_seconds=0, timeout_seconds=10, rows=rows)
    )
    assert started.wait(5)
    return release, thread, outcome


def run_in_thread(function):
    outcome = {}

    def target():
        try:
            outcome["result"] = function()
        except Exception as exc:  # the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


class TestInferenceGate:
    def test_a_full_gate_refuses_after_the_short_wait(self):
        gate = InferenceGate(capacity=1)
        release, thread, outcome = occupy(gate)
        begun = time.perf_counter()
        with pytest.raises(ModelBusy) as refused:
            gate.run(lambda: "second", wait_seconds=0.05, timeout_seconds=10)
        assert time.perf_counter() - begun < 1.0
        assert refused.value.status_code == 503 and refused.value.retry_after == 1
        release.set()
        thread.join(5)
        assert outcome == {"result": "done"}
        assert gate.run(lambda: "third", wait_seconds=0, timeout_seconds=10) == "third"
        gate.shutdown()

    def test_a_waiting_request_gets_the_slot_freed_within_its_wait(self):
        gate = InferenceGate(capacity=1)
        release, thread, _ = occupy(gate)
        threading.Timer(0.1, release.set).start()
        assert gate.run(lambda: "next", wait_seconds=5, timeout_seconds=10) == "next"
        thread.join(5)
        gate.shutdown()

    def test_a_late_inference_answers_timeout_and_keeps_its_slot_until_done(self):
        gate = InferenceGate(capacity=1)
        release = threading.Event()
        begun = time.perf_counter()
        with pytest.raises(InferenceTimeout) as late:
            gate.run(blocking_compute(release), wait_seconds=0, timeout_seconds=0.2)
        assert 0.2 <= time.perf_counter() - begun < 1.5
        assert late.value.status_code == 503 and late.value.code == "inference_timeout"
        assert gate.in_flight == 1
        with pytest.raises(ModelBusy):
            gate.run(lambda: "x", wait_seconds=0, timeout_seconds=1)
        release.set()
        assert gate.run(lambda: "free again", wait_seconds=2, timeout_seconds=1) == "free again"
        gate.shutdown()

    def test_an_exception_in_the_model_becomes_inference_failed_and_frees_the_slot(self, caplog):
        gate = InferenceGate(capacity=1)

        def broken():
            raise RuntimeError("CUDA error: device-side assert triggered")

        with pytest.raises(InferenceFailed) as failed:
            gate.run(broken, wait_seconds=0, timeout_seconds=1)
        # The exception is logged, never told to the client.
        assert failed.value.status_code == 503 and "RuntimeError" not in failed.value.message
        assert "CUDA error" in caplog.text
        assert gate.in_flight == 0
        assert gate.run(lambda: "ok", wait_seconds=0, timeout_seconds=1) == "ok"
        gate.shutdown()

    def test_domain_errors_pass_through_unchanged(self):
        gate = InferenceGate(capacity=1)

        def rejected():
            raise ImageRejected("bad", code="corrupt_image")

        with pytest.raises(ImageRejected):
            gate.run(rejected, wait_seconds=0, timeout_seconds=1)
        gate.shutdown()

    def test_queue_depth_gauge_follows_inferences_in_flight(self):
        gate = InferenceGate(capacity=2)
        release, thread, _ = occupy(gate)
        assert metrics.QUEUE_DEPTH._value.get() == 1
        release.set()
        thread.join(5)
        assert metrics.QUEUE_DEPTH._value.get() == 0
        gate.shutdown()

    def test_model_time_is_added_to_the_request_timer(self):
        timer = ModelTimer()
        token = model_time_ms.set(timer)
        try:
            run_inference(lambda: time.sleep(0.05))
        finally:
            model_time_ms.reset(token)
        assert timer.milliseconds >= 45


class TestLatencyBudget:
    def test_the_clock_is_an_ewma_of_forward_time_per_row(self):
        clock = ForwardClock(weight=0.2)
        assert clock.seconds_per_row == 0.0
        clock.observe(0.8, 8)  # a batched forward: 0.1 s per row
        assert clock.seconds_per_row == pytest.approx(0.1)
        clock.observe(0.2, 1)
        assert clock.seconds_per_row == pytest.approx(0.12)

    def test_a_computation_is_shed_only_when_its_expected_wait_exceeds_the_budget(self):
        clock = ForwardClock()
        clock.observe(0.1, 1)
        gate = InferenceGate(capacity=8, clock=clock)
        held = [occupy(gate), occupy(gate)]
        assert gate.expected_wait() == pytest.approx(0.2)
        # 2 ahead x 0.1 s fits a 0.25 s budget...
        assert gate.run(lambda: "admitted", wait_seconds=0, timeout_seconds=5, budget_seconds=0.25) == "admitted"
        held.append(occupy(gate))
        # ...3 ahead does not: refused at once, with free slots left.
        begun = time.perf_counter()
        with pytest.raises(ModelBusy):
            gate.run(lambda: "shed", wait_seconds=5, timeout_seconds=5, budget_seconds=0.25)
        assert time.perf_counter() - begun < 1.0
        assert gate.in_flight == 3 < gate.capacity
        for release, thread, _ in held:
            release.set()
            thread.join(5)
        gate.shutdown()

    def test_the_expected_wait_counts_the_rows_in_flight_not_the_computations(self):
        """One computation of 40 rows (a long text's passages and rewrites) is 40 rows ahead, not one."""
        clock = ForwardClock()
        clock.observe(0.01, 1)
        gate = InferenceGate(capacity=8, clock=clock)
        held = [occupy(gate, rows=40)]
        assert gate.in_flight == 1 and gate.rows_in_flight == 40
        assert gate.expected_wait() == pytest.approx(0.4)
        with pytest.raises(ModelBusy):
            gate.run(lambda: "shed", wait_seconds=5, timeout_seconds=5, budget_seconds=0.25)
        for release, thread, _ in held:
            release.set()
            thread.join(5)
        deadline = time.monotonic() + 5
        while gate.rows_in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.rows_in_flight == 0
        assert gate.run(lambda: "admitted", wait_seconds=0, timeout_seconds=5, budget_seconds=0.25) == "admitted"
        gate.shutdown()

    def test_a_queue_as_deep_as_the_old_bound_is_admitted_within_the_default_budget(self, settings):
        """Seven requests ahead of forwards of 70 ms per row (ViT-B/32, one
        thread) wait about half a second: admitted, where a fixed queue of
        six refused the seventh."""
        clock = ForwardClock()
        clock.observe(0.07, 1)
        gate = InferenceGate(capacity=16, clock=clock)
        held = [occupy(gate) for _ in range(7)]
        from clipcheck.settings import clip_settings

        budget = clip_settings.LATENCY_BUDGET_MS / 1000
        assert gate.run(lambda: "eighth", wait_seconds=0, timeout_seconds=5, budget_seconds=budget) == "eighth"
        for release, thread, _ in held:
            release.set()
            thread.join(5)
        gate.shutdown()

    def test_a_computation_alongside_shares_its_requests_slot(self):
        gate = InferenceGate(capacity=1)
        release, started = threading.Event(), threading.Event()
        with gate.start(blocking_compute(release, started), wait_seconds=0, timeout_seconds=5) as pending:
            assert started.wait(5)
            assert pending.alongside(lambda: "image") == "image"  # the gate is full, yet it runs
            assert gate.in_flight == 1
            release.set()
            assert pending.result() == "done"
            assert gate.in_flight == 1  # held until the request is done with it
        deadline = time.monotonic() + 5
        while gate.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.in_flight == 0
        gate.shutdown()

    @pytest.mark.django_db
    def test_the_engines_forwards_feed_the_clock(self):
        forward_clock.reset()
        assert analyze(APIClient()).status_code == 200
        assert forward_clock.seconds_per_row > 0


@pytest.fixture
def stalled_model(monkeypatch):
    """The model's image encoder blocks until the test releases it."""
    from clipcheck.engine.clip import ClipEngine

    release, started = threading.Event(), threading.Event()
    original = ClipEngine.encode_images

    def encode_images(self, images):
        started.set()
        release.wait(10)
        return original(self, images)

    monkeypatch.setattr(ClipEngine, "encode_images", encode_images)
    yield release, started
    release.set()


def analyze(client):
    upload = SimpleUploadedFile("a.png", image_bytes(), content_type="image/png")
    return client.post("/clip/analyze", {"file": upload, "text": "red"}, format="multipart")


@pytest.mark.django_db
class TestThroughTheApi:
    # Two requests on two threads write analyses: each needs its own committed view of the database.
    @pytest.mark.django_db(transaction=True)
    def test_overload_is_shed_with_503_overloaded_and_retry_after(self, settings, stalled_model):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_QUEUE": 1, "QUEUE_TIMEOUT_MS": 20}
        release, started = stalled_model
        thread, outcome = run_in_thread(lambda: analyze(APIClient()))
        assert started.wait(10)
        begun = time.perf_counter()
        response = analyze(APIClient())
        assert time.perf_counter() - begun < 2.0
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "overloaded"
        assert response["Retry-After"] == "1"
        release.set()
        thread.join(10)
        assert outcome["result"].status_code == 200

    def test_inference_over_its_budget_answers_503_in_time(self, settings, stalled_model):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "INFERENCE_TIMEOUT_SECONDS": 0.3}
        begun = time.perf_counter()
        response = analyze(APIClient())
        assert time.perf_counter() - begun < 2.0
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "inference_timeout"
        assert response["Retry-After"] == "1"

    def test_a_crashing_model_answers_503_and_the_next_request_works(self, monkeypatch):
        from clipcheck.engine.clip import ClipEngine

        original = ClipEngine.encode_images
        calls = []

        def flaky(self, images):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("out of memory")
            return original(self, images)

        monkeypatch.setattr(ClipEngine, "encode_images", flaky)
        client = APIClient()
        failed = analyze(client)
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "inference_failed"
        assert analyze(client).status_code == 200
