"""Prometheus metrics of the service and the /metrics exposition view.

With several gunicorn workers each process counts on its own; set
``PROMETHEUS_MULTIPROC_DIR`` (gunicorn.conf.py does) before the processes
start and /metrics aggregates the files every worker writes there
(prometheus_client's multiprocess mode). Without it /metrics shows the one
process that answered.
"""

import hmac
import os

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from clipcheck.settings import clip_settings

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Methods outside this set are counted as "other": clients choose the
# method string, and every label value is a new time series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "clipcheck_http_requests", "HTTP requests answered.", ["endpoint", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "clipcheck_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it.",
    ["endpoint", "method"],
    buckets=LATENCY_BUCKETS,
)
SCORE_BUCKETS = tuple(round(0.05 * step, 2) for step in range(1, 20))
# Categories named in the score histogram; the rest are "other" (every label value is a time series).
METRIC_CATEGORIES = 25
SIMILARITY_SCORES = Histogram(
    "clipcheck_similarity_score",
    "Similarity scores of computed analyses by verdict and category (the active adaptation's categories or "
    "CATEGORIES, at most 25; the rest other; none without a category).",
    ["verdict", "category"],
    buckets=SCORE_BUCKETS,
)
INFERENCE_BATCH_SIZE = Histogram(
    "clipcheck_inference_batch_size", "Inputs per model forward pass.", ["kind"], buckets=BATCH_BUCKETS
)
INFERENCE_LATENCY = Histogram(
    "clipcheck_inference_duration_seconds", "Model forward pass time.", ["kind"], buckets=LATENCY_BUCKETS
)
QUEUE_DEPTH = Gauge(
    "clipcheck_inference_queue_depth",
    "Inferences in flight (running or waiting for the model), summed over live processes.",
    multiprocess_mode="livesum",
)
INFERENCE_REJECTED = Counter(
    "clipcheck_inference_rejected", "Requests refused with 503 because the inference queue was full."
)
INFERENCE_TIMEOUTS = Counter(
    "clipcheck_inference_timeouts", "Inferences that exceeded INFERENCE_TIMEOUT_SECONDS."
)
MODEL_LOADED = Gauge(
    "clipcheck_model_loaded",
    "1 when the CLIP model is loaded in the process, else 0 (one series per live process).",
    multiprocess_mode="liveall",
)
MODEL_LOAD_FAILURES = Counter("clipcheck_model_load_failures", "Failed attempts to load the CLIP model.")
CORRUPT_STORED_VECTORS = Counter(
    "clipcheck_corrupt_stored_vectors",
    "Stored image embeddings or layouts skipped because their bytes do not match their dimension.",
    ["kind"],
)


# Collectors other apps register (``register_collector``): read at scrape
# time by the process answering /metrics, e.g. gauges from the database.
_app_collectors = []


def register_collector(collector):
    """Add a collector to /metrics, in single- and multiprocess mode alike."""
    if any(type(existing) is type(collector) for existing in _app_collectors):
        return
    _app_collectors.append(collector)
    REGISTRY.register(collector)


def method_label(method):
    method = (method or "").upper()
    return method if method in KNOWN_METHODS else "other"


def exposition():
    """The text exposition of every metric, aggregated over processes when
    prometheus_client runs in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in _app_collectors:
            registry.register(collector)
    else:
        registry = REGISTRY
    return generate_latest(registry)


# Read-only and never session-authenticated: a POST gets 405, not a CSRF 403.
@csrf_exempt
def metrics_view(request):
    """GET /metrics for Prometheus; bearer-token protected when METRICS_TOKEN is set."""
    from clipcheck.api.exceptions import error_body

    if request.method not in ("GET", "HEAD"):
        response = JsonResponse(error_body("method_not_allowed", "Use GET."), status=405)
        response["Allow"] = "GET, HEAD"
        return response
    token = clip_settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            response = JsonResponse(error_body("not_authenticated", "A valid metrics token is required."), status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
