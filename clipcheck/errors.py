"""Domain errors. Each carries the HTTP status, a stable machine-readable code
and a human-readable message; ``clipcheck.api.exceptions`` renders them in the
one JSON error format: ``{"error": {"code", "message", "detail"?}}``.

``extra`` (as the HackSoft styleguide's ``ApplicationError.extra``) holds
fields a client acts on beside the error object; they are rendered at the top
level of the body, next to ``error``. ``reason`` is the internal explanation
(a path, an exception) for logs, operators' commands and staff, never
rendered to clients; it defaults to the message.
"""


class ClipcheckError(Exception):
    status_code = 400
    code = "bad_request"
    default_message = "The request was refused."
    # Seconds the client should wait before retrying (sent as Retry-After), if any.
    retry_after = None

    def __init__(
        self, message=None, *, code=None, status_code=None, detail=None, retry_after=None, extra=None, reason=None
    ):
        message = message or self.default_message
        super().__init__(message)
        self.message = message
        self.reason = reason or message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        if retry_after is not None:
            self.retry_after = retry_after
        self.detail = detail
        self.extra = dict(extra or {})

    def __str__(self):
        # What logs and tracebacks show: the internal reason.
        return self.reason

    def as_dict(self):
        body = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class ImageRejected(ClipcheckError):
    """The bytes are not an image we accept (format, size, corruption)."""

    code = "invalid_image"


class BatchPathRejected(ClipcheckError):
    """A server-side path in a batch item is unusable or outside the root."""

    code = "invalid_path"


class ModelUnavailable(ClipcheckError):
    """The model could not be loaded (or is still loading) in this process.

    ``message`` is what any client may read; ``reason`` (the model's path
    and the exception) is for the log, operators' commands and staff.
    """

    status_code = 503
    code = "model_unavailable"
    default_message = "The model is not available on this server; retry later."


class BatchUnavailable(ClipcheckError):
    status_code = 503
    code = "batch_disabled"


class ModelBusy(ClipcheckError):
    """The inference queue is full: shed load fast instead of timing out."""

    status_code = 503
    code = "overloaded"
    default_message = "The server is busy; retry shortly."
    retry_after = 1


class InferenceTimeout(ClipcheckError):
    """The inference did not finish within INFERENCE_TIMEOUT_SECONDS."""

    status_code = 503
    code = "inference_timeout"
    default_message = "The model did not answer in time; retry shortly."
    retry_after = 1


class InferenceFailed(ClipcheckError):
    """The model raised while computing: a server-side fault, not bad input."""

    status_code = 503
    code = "inference_failed"
    default_message = "The model failed to process the request; retry shortly."


class DatabaseUnavailable(ClipcheckError):
    """The database cannot be reached (connection refused, lost, timed out)."""

    status_code = 503
    code = "database_unavailable"
    default_message = "The database is unavailable; retry shortly."
    retry_after = 5


class RequestTooCostly(ClipcheckError):
    """A request needs more model work than one request may have (``MAX_REQUEST_ROWS``).

    ``cost`` counts its rows (``clipcheck.costs.Cost.as_dict``); ``partial``
    says it was counted only until it passed the bound.
    """

    status_code = 413
    code = "request_too_costly"

    def __init__(self, *, cost, max_rows, partial=False):
        needs = f"at least {cost['rows']}" if partial else str(cost["rows"])
        super().__init__(
            f"This request needs {needs} rows of model work (photos, text passages and attribute rewrites); "
            f"one request may have at most {max_rows}. Send fewer items or shorter texts.",
            detail={**cost, "max_rows": max_rows},
        )
