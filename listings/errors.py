"""Errors of the listings app, in clipcheck's one error format."""

from clipcheck.errors import ClipcheckError


class ImageTextMismatch(ClipcheckError):
    """POST /upload under the "reject" policy: the description does not match the photo."""

    status_code = 422
    code = "image_text_mismatch"

    def __init__(self, message, *, similarity_score, suggestion, reasons=(), **kwargs):
        extra = {"similarity_score": similarity_score, "suggestion": suggestion, "reasons": list(reasons)}
        super().__init__(message, extra=extra, **kwargs)


class StorageFull(ClipcheckError):
    """POST /upload: media storage has no room left (a full disk or quota); nothing was stored."""

    status_code = 507
    code = "storage_full"
    default_message = "The server has no room to store the photos now; try again later."


class ListingImageUnavailable(ClipcheckError):
    """A listing's stored image cannot be read back from storage."""

    status_code = 409
    code = "image_unavailable"


class ReviewConflict(ClipcheckError):
    """The listing is held by another moderator, or the decision to undo is no longer the latest."""

    status_code = 409
    code = "review_conflict"


class ReviewInvalid(ClipcheckError):
    """A review request names an unknown decision or reason code."""

    code = "invalid_review"


class AppealRefused(ClipcheckError):
    """POST /listings/<id>/appeal: the appeal cannot be taken (nothing to contest, too late, already contested)."""

    status_code = 409
    code = "appeal_refused"


class AppealInvalid(ClipcheckError):
    """POST /listings/<id>/appeal: the seller's text is empty or too long."""

    code = "invalid_appeal"
