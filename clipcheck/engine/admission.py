"""Admission control for inference: shed by expected wait, a time budget each.

Every model computation of a request goes through ``run_inference`` (or
``start_inference``, which returns at once so that a request can run its
image and text computations at the same time):

* a computation is shed with ``ModelBusy`` (503 "overloaded", Retry-After)
  when its expected wait — the rows already in flight (photos, text
  passages, attribute rewrites: what each computation said it would
  encode) × the measured forward time per row (an EWMA over the engine's
  forward passes, ``forward_clock``) — exceeds ``LATENCY_BUDGET_MS``.
  Micro-batching makes a queue of N requests far cheaper than N single
  forwards, so shedding at a fixed queue length refused requests that would
  have been served in time; counting computations instead of rows let one
  request of a hundred rows count as one of a single row;
* ``MAX_QUEUE`` stays a hard bound on computations in flight per process
  (threads it may occupy); a computation that finds no free slot within
  ``QUEUE_TIMEOUT_MS`` is shed as well;
* the computation runs on a small thread pool and the request waits at most
  ``INFERENCE_TIMEOUT_SECONDS`` for it (``InferenceTimeout``, 503). torch
  cannot be interrupted, so a late computation finishes in the background
  and keeps its slot until then: runaway work still counts against
  admission;
* an exception inside the model becomes ``InferenceFailed`` (503); the
  process keeps serving.

Behind it, the engine's micro-batchers (``clipcheck.engine.batcher``) merge
the admitted computations that arrive together into one forward pass: this
module decides which computations wait, the batcher decides how they share
the model.
"""

import concurrent.futures
import logging
import threading
import time

from clipcheck import metrics
from clipcheck.engine.clock import forward_clock, model_time_report
from clipcheck.errors import ClipcheckError, InferenceFailed, InferenceTimeout, ModelBusy
from clipcheck.process_singleton import CapacitySingleton
from clipcheck.settings import clip_settings

logger = logging.getLogger(__name__)


class PendingInference:
    """An admitted computation running on the gate's pool; ``result()`` waits for it.

    A context manager: it holds one slot until the request leaves the
    ``with`` block and its computation — and any computation of the same
    request run ``alongside`` it — is done (a late one keeps the slot).
    """

    def __init__(self, gate, timeout_seconds, rows):
        self._gate = gate
        self._timeout_seconds = timeout_seconds
        self._rows = rows  # counted in flight until the slot is released
        self._holds = 1  # the request's own, until close()
        self._closed = False
        self._lock = threading.Lock()
        self._future = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finished(None)

    def _submit(self, compute):
        with self._lock:
            self._holds += 1
        try:
            future = self._gate._executor.submit(_timed, compute)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future):
        with self._lock:
            self._holds -= 1
            release = self._holds == 0
        if release:
            self._gate._release(self._rows)

    def alongside(self, compute):
        """Run another computation of the same request now, on this one's slot, and wait for it."""
        return self._wait(self._submit(compute))

    def result(self):
        return self._wait(self._future)

    def _wait(self, future):
        try:
            result, elapsed_ms = future.result(timeout=self._timeout_seconds)
        except concurrent.futures.TimeoutError:
            metrics.INFERENCE_TIMEOUTS.inc()
            logger.error("Inference exceeded its budget of %ss; answering 503.", self._timeout_seconds)
            raise InferenceTimeout() from None
        except ClipcheckError:
            raise
        except Exception as exc:
            # The exception is for the log; the client gets the generic message.
            logger.exception("Inference failed.")
            raise InferenceFailed() from exc
        model_time_report(elapsed_ms)
        return result


class InferenceGate:
    def __init__(self, capacity, *, clock=None):
        self.capacity = capacity
        self.clock = clock or forward_clock
        self._slots = threading.BoundedSemaphore(capacity)
        self._in_flight = 0
        self._rows_in_flight = 0
        self._count_lock = threading.Lock()
        # Two threads per slot (a computation and one alongside it): an
        # admitted computation never waits for a thread.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2 * capacity, thread_name_prefix="clipcheck-inference"
        )

    @property
    def in_flight(self):
        return self._in_flight

    @property
    def rows_in_flight(self):
        return self._rows_in_flight

    def expected_wait(self):
        """Seconds a computation arriving now should wait for the rows ahead of it."""
        return self._rows_in_flight * self.clock.seconds_per_row

    def start(self, compute, *, wait_seconds, timeout_seconds, budget_seconds=None, rows=1):
        """Admit ``compute`` (``rows`` rows of model input: it and what runs
        ``alongside`` it) and start it; raises ``ModelBusy`` when shed."""
        if budget_seconds is not None and self.expected_wait() > budget_seconds:
            metrics.INFERENCE_REJECTED.inc()
            raise ModelBusy()
        if not self._slots.acquire(timeout=wait_seconds):
            metrics.INFERENCE_REJECTED.inc()
            raise ModelBusy()
        rows = max(int(rows), 1)
        self._adjust(+1, rows)
        pending = PendingInference(self, timeout_seconds, rows)
        pending._future = pending._submit(compute)
        return pending

    def run(self, compute, *, wait_seconds, timeout_seconds, budget_seconds=None, rows=1):
        with self.start(
            compute, wait_seconds=wait_seconds, timeout_seconds=timeout_seconds, budget_seconds=budget_seconds,
            rows=rows,
        ) as pending:
            return pending.result()

    def shutdown(self):
        self._executor.shutdown(wait=False)

    def _adjust(self, delta, rows):
        with self._count_lock:
            self._in_flight += delta
            self._rows_in_flight += delta * rows
            metrics.QUEUE_DEPTH.set(self._in_flight)

    def _release(self, rows):
        self._adjust(-1, rows)
        self._slots.release()


def _timed(compute):
    started = time.perf_counter()
    result = compute()
    return result, (time.perf_counter() - started) * 1000.0


_gate = CapacitySingleton(InferenceGate, retire=InferenceGate.shutdown)


def inference_gate():
    """The process's gate, rebuilt when MAX_QUEUE changes (tests, reloads)."""
    return _gate.get(int(clip_settings.MAX_QUEUE))


def start_inference(compute, *, rows=1):
    """Admit ``compute()`` (a model computation of ``rows`` rows, with what
    runs alongside it) and start it; use the result as a context manager,
    ``.result()`` waits."""
    return inference_gate().start(
        compute,
        wait_seconds=max(float(clip_settings.QUEUE_TIMEOUT_MS), 0.0) / 1000.0,
        timeout_seconds=float(clip_settings.INFERENCE_TIMEOUT_SECONDS),
        budget_seconds=float(clip_settings.LATENCY_BUDGET_MS) / 1000.0,
        rows=rows,
    )


def run_inference(compute, *, rows=1):
    """Run ``compute()`` (a model computation of ``rows`` rows) under admission control."""
    with start_inference(compute, rows=rows) as pending:
        return pending.result()
