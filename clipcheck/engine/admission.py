"""Admission control for inference: a bounded number in flight, a time budget each.

Every model computation of a request goes through ``run_inference``:

* at most ``MAX_QUEUE`` computations are in flight per process (running, or
  waiting for the model's lock); a request that finds no free slot within
  ``QUEUE_TIMEOUT_MS`` gets ``ModelBusy`` (503 "overloaded", Retry-After)
  at once instead of piling up until gunicorn times the worker out;
* the computation runs on a small thread pool and the request waits at most
  ``INFERENCE_TIMEOUT_SECONDS`` for it (``InferenceTimeout``, 503). torch
  cannot be interrupted, so a late computation finishes in the background
  and keeps its slot until then: runaway work still counts against
  admission;
* an exception inside the model becomes ``InferenceFailed`` (503); the
  process keeps serving.

Behind it, the engine's micro-batchers (``clipcheck.engine.batcher``) merge
the admitted computations that arrive together into one forward pass: this
module bounds how many wait and for how long, the batcher decides how they
share the model.
"""

import concurrent.futures
import logging
import threading
import time

from clipcheck import metrics
from clipcheck.errors import ClipcheckError, InferenceFailed, InferenceTimeout, ModelBusy
from clipcheck.middleware import model_time_add
from clipcheck.settings import clip_settings

logger = logging.getLogger(__name__)

class InferenceGate:
    def __init__(self, capacity):
        self.capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity)
        self._in_flight = 0
        self._count_lock = threading.Lock()
        # One thread per slot: an admitted computation never waits for a thread.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=capacity, thread_name_prefix="clipcheck-inference"
        )

    @property
    def in_flight(self):
        return self._in_flight

    def run(self, compute, *, wait_seconds, timeout_seconds):
        if not self._slots.acquire(timeout=wait_seconds):
            metrics.INFERENCE_REJECTED.inc()
            raise ModelBusy()
        self._adjust(+1)
        try:
            future = self._executor.submit(_timed, compute)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        try:
            result, elapsed_ms = future.result(timeout=timeout_seconds)
        except concurrent.futures.TimeoutError:
            metrics.INFERENCE_TIMEOUTS.inc()
            logger.error("Inference exceeded its budget of %ss; answering 503.", timeout_seconds)
            raise InferenceTimeout() from None
        except ClipcheckError:
            raise
        except Exception as exc:
            # The exception is for the log; the client gets the generic message.
            logger.exception("Inference failed.")
            raise InferenceFailed() from exc
        model_time_add(elapsed_ms)
        return result

    def shutdown(self):
        self._executor.shutdown(wait=False)

    def _adjust(self, delta):
        with self._count_lock:
            self._in_flight += delta
            metrics.QUEUE_DEPTH.set(self._in_flight)

    def _release(self):
        self._adjust(-1)
        self._slots.release()


def _timed(compute):
    started = time.perf_counter()
    result = compute()
    return result, (time.perf_counter() - started) * 1000.0


_gate_lock = threading.Lock()
_gate = None


def inference_gate():
    """The process's gate, rebuilt when MAX_QUEUE changes (tests, reloads)."""
    global _gate
    capacity = int(clip_settings.MAX_QUEUE)
    gate = _gate
    if gate is not None and gate.capacity == capacity:
        return gate
    with _gate_lock:
        if _gate is None or _gate.capacity != capacity:
            if _gate is not None:
                _gate.shutdown()
            _gate = InferenceGate(capacity)
        return _gate


def run_inference(compute):
    """Run ``compute()`` (a model computation) under admission control."""
    return inference_gate().run(
        compute,
        wait_seconds=max(float(clip_settings.QUEUE_TIMEOUT_MS), 0.0) / 1000.0,
        timeout_seconds=float(clip_settings.INFERENCE_TIMEOUT_SECONDS),
    )
