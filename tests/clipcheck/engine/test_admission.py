"""Admission control: bounded in-flight inferences, a time budget, contained failures."""

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from clipcheck import metrics
from clipcheck.engine.admission import InferenceGate, run_inference
from clipcheck.middleware import ModelTimer, model_time_ms
from clipcheck.errors import ImageRejected, InferenceFailed, InferenceTimeout, ModelBusy
from tests.support.images import image_bytes


def blocking_compute(release, started=None):
    def compute():
        if started is not None:
            started.set()
        release.wait(10)
        return "done"

    return compute


def occupy(gate):
    """Starts an inference that holds one of the gate's slots until released."""
    release, started = threading.Event(), threading.Event()
    thread, outcome = run_in_thread(
        lambda: gate.run(blocking_compute(release, started), wait_seconds=0, timeout_seconds=10)
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
