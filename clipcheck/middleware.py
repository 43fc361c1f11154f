"""HTTP middleware of the clipcheck service: telemetry and request size limits."""

import codecs
import contextvars
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from clipcheck import metrics
from clipcheck.api.exceptions import error_body
from clipcheck.engine.clock import model_time_subscribe
from clipcheck.settings import clip_settings

request_logger = logging.getLogger("clipcheck.requests")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is echoed only when it is short and plain, so it
# cannot inject into log lines or headers.
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# The current request's ModelTimer: RequestTelemetryMiddleware opens one per
# request, admission control (clipcheck.engine.admission) adds to it.
model_time_ms: "contextvars.ContextVar[ModelTimer | None]" = contextvars.ContextVar("clipcheck_model_time_ms", default=None)


class ModelTimer:
    """Accumulates model milliseconds over the inferences of one request."""

    def __init__(self) -> None:
        self.milliseconds = 0.0


def model_time_add(milliseconds: float) -> None:
    """Count a model computation toward the current request's timer, if one is open."""
    timer = model_time_ms.get()
    if timer is not None:
        timer.milliseconds += milliseconds


# The engine reports each computation's time; this module listens (the engine never imports it).
model_time_subscribe(model_time_add)


class RequestTelemetryMiddleware:
    """One JSON log line and Prometheus samples per request.

    Place it first in MIDDLEWARE so that the time and status cover every
    other layer, including requests refused before reaching a view.
    Log fields: method, path, endpoint (the URL name), status, duration_ms,
    model_ms (time spent in model computations), request_id.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = request.headers.get(REQUEST_ID_HEADER, "")
        if not SAFE_REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        request.request_id = request_id
        timer = ModelTimer()
        token = model_time_ms.set(timer)
        try:
            response = self.get_response(request)
        finally:
            model_time_ms.reset(token)
        duration = time.perf_counter() - started
        response[REQUEST_ID_HEADER] = request_id

        match = getattr(request, "resolver_match", None)
        endpoint = match.view_name if match else "unmatched"
        method = metrics.method_label(request.method)
        metrics.HTTP_REQUESTS.labels(endpoint=endpoint, method=method, status=str(response.status_code)).inc()
        metrics.HTTP_LATENCY.labels(endpoint=endpoint, method=method).observe(duration)
        request_logger.info(json.dumps({
            "event": "request",
            "method": method,
            "path": request.path,
            "endpoint": endpoint,
            "status": response.status_code,
            "duration_ms": round(duration * 1000.0, 2),
            "model_ms": round(timer.milliseconds, 2),
            "request_id": request_id,
        }))
        return response


class RequestSizeLimitMiddleware:
    """413 for a body larger than CLIPCHECK["MAX_REQUEST_BYTES"], judged from
    Content-Length before a byte of it is read; 400 for a malformed length.

    Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE) apply only to form
    fields and only once parsing has begun; this bounds uploads and JSON
    alike. Bodies without Content-Length are not read by Django at all.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if not raw_length.strip() and request.META.get("HTTP_TRANSFER_ENCODING", "").strip():
            # A chunked body: WSGI gives Django no length, so Django reads
            # nothing and the client would hear "no file was submitted".
            return JsonResponse(
                error_body("length_required", "Send the request body with a Content-Length header, not chunked."),
                status=411,
            )
        if raw_length.strip():
            try:
                length = int(raw_length)
            except ValueError:
                length = -1
            if length < 0:
                return JsonResponse(
                    error_body("invalid_content_length", "The Content-Length header is not a valid length."),
                    status=400,
                )
            limit = clip_settings.MAX_REQUEST_BYTES
            if length > limit:
                return JsonResponse(
                    error_body(
                        "request_too_large",
                        f"The request body is {length} bytes; this server accepts at most {limit}.",
                    ),
                    status=413,
                )
        return self.get_response(request)


class RequestCharsetMiddleware:
    """415 for a request whose Content-Type names a charset that cannot
    decode a form: ``multipart/form-data; charset=idna``, ``charset=base64``,
    ``charset=utf-16``...

    Django decodes form fields, file names and even the query string with
    the charset a client names, and codecs that Python knows but that are
    not ASCII-compatible text encodings raise from deep inside its parsers
    (a 500). Refused here, before anything reads the request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        charset = request.content_params.get("charset") if request.content_params else None
        if charset is not None and not charset_usable(charset.strip().lower()):
            return JsonResponse(
                error_body(
                    "unsupported_charset",
                    "The request's charset cannot be used; send UTF-8 (or name no charset).",
                ),
                status=415,
            )
        return self.get_response(request)


# Every ASCII character a form, a multipart header or a query string uses.
ASCII_PROBE = bytes(range(32, 127)).decode("ascii") + "\r\n\t"


@functools.lru_cache(maxsize=256)
def charset_usable(name: str) -> bool:
    """Whether the codec ``name`` is a text encoding that keeps ASCII as
    ASCII and decodes any bytes (with errors="replace") without raising."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return False
    if not getattr(info, "_is_text_encoding", True):  # base64, rot13, zlib...
        return False
    try:
        return (
            ASCII_PROBE.encode(info.name) == ASCII_PROBE.encode("ascii")
            and isinstance(bytes(range(256)).decode(info.name, "replace"), str)
        )
    except Exception:  # idna, punycode and friends raise whatever they like
        return False
