"""One JSON error format for every failure: ``{"error": {"code", "message", "detail"?}}``."""

import logging
import sys
from typing import Any

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from clipcheck.errors import ClipcheckError, DatabaseUnavailable

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    return {"error": error}


# Raised when the database cannot be reached (refused, dropped, timed out):
# an outage to report as 503, not a bug to report as 500.
DATABASE_OUTAGES = (OperationalError, InterfaceError)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: domain errors, validation, Django's own.

    As DRF's own handler does, a handled error rolls back the request's
    transaction under ``ATOMIC_REQUESTS``: an error answer never commits half
    of what the view wrote."""
    response = _error_response(exc, context)
    if response is not None:
        set_rollback()
    return response


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DATABASE_OUTAGES):
        exc = database_unavailable(exc)
    if isinstance(exc, ClipcheckError):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        body = {**error_body(exc.code, exc.message, exc.detail), **exc.extra}
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, exceptions.ValidationError):
        code, message = validation_error_summary(exc.detail)
        return Response(error_body(code, message, exc.detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SuspiciousOperation):
        status_code, code, message = suspicious_operation_error(exc)
        return Response(error_body(code, message), status=status_code)
    response = drf_exception_handler(exc, context)  # Http404, PermissionDenied, APIException
    if response is None:
        return None
    if isinstance(exc, Http404):
        code, message = "not_found", "Not found."
    elif isinstance(exc, PermissionDenied):
        code, message = "permission_denied", "You do not have permission to perform this action."
    else:
        assert isinstance(exc, exceptions.APIException)  # DRF's handler answers nothing else
        code, message = exc.default_code, _flatten(exc.detail)
    response.data = error_body(code, message)
    return response


def database_unavailable(exc: Exception) -> DatabaseUnavailable:
    logger.error("Database unavailable: %s: %s", exc.__class__.__name__, exc)
    return DatabaseUnavailable()


def suspicious_operation_error(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, RequestDataTooBig):
        return 413, "request_too_large", "The request body is larger than this server accepts."
    if isinstance(exc, TooManyFilesSent):
        return 400, "too_many_files", "The request has more files than this server accepts."
    if isinstance(exc, TooManyFieldsSent):
        return 400, "too_many_fields", "The request has more fields than this server accepts."
    return 400, "bad_request", "The request was refused."


def validation_error_summary(detail: object) -> tuple[str, str]:
    """A specific code when one field is at fault (``missing_file``, ``invalid_threshold``)."""
    if isinstance(detail, dict) and len(detail) == 1:
        field, errors = next(iter(detail.items()))
        codes = _codes(errors)
        if field != "non_field_errors":
            prefix = "missing" if codes and all(code in ("required", "null") for code in codes) else "invalid"
            return f"{prefix}_{field}", f"{field}: {_flatten(errors)}"
    return "invalid_request", _flatten(detail)


def _codes(errors: object) -> list[str | None]:
    if isinstance(errors, list):
        return [getattr(error, "code", None) for error in errors if not isinstance(error, (dict, list))]
    return [getattr(errors, "code", None)]


def _flatten(detail: object) -> str:
    if isinstance(detail, dict):
        return " ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


# Django-level handlers (clipproject.urls): errors raised outside DRF views,
# e.g. an unknown URL or an unhandled exception, in the same JSON format, except
# for a browser asking for a page (the admin): it gets Django's own HTML page.

def wants_html(request: HttpRequest) -> bool:
    """A browser asking for a page (``Accept`` prefers text/html); API clients and fetch() get JSON."""
    return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, SuspiciousOperation):
        status_code, code, message = suspicious_operation_error(exception)
    else:
        status_code, code, message = 400, "bad_request", "The request was refused."
    return JsonResponse(error_body(code, message), status=status_code)


def json_permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(error_body("permission_denied", "Access denied."), status=403)


def json_csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a refused form post outside DRF (e.g. the admin)."""
    return JsonResponse(error_body("csrf_failed", f"CSRF verification failed: {reason}".strip()), status=403)


def json_server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this while handling the exception, so it is still current:
    # a database outage in a middleware or a non-DRF view is a 503 too.
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_OUTAGES):
        error = database_unavailable(exc)
        response = JsonResponse(error_body(error.code, error.message), status=error.status_code)
        response["Retry-After"] = str(error.retry_after)
        return response
    return JsonResponse(error_body("internal_error", "The server failed to process the request."), status=500)
