"""System checks for ``settings.LISTINGS`` (ids ``listings.E0xx``)."""

import re

from django.core.checks import Error, Tags, register

from clipcheck.checks import unknown_settings_errors
from listings.models import UNDO_REASON_CODE
from listings.settings import UPLOAD_POLICIES, listings_settings

REASON_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


@register(Tags.compatibility)
def check_listings_settings(app_configs=None, **kwargs):
    errors = unknown_settings_errors(listings_settings, error_id="listings.E001")
    if listings_settings.UPLOAD_POLICY not in UPLOAD_POLICIES:
        errors.append(Error(
            f"LISTINGS UPLOAD_POLICY {listings_settings.UPLOAD_POLICY!r} is not valid.",
            hint=f"Use one of {', '.join(UPLOAD_POLICIES)}.",
            id="listings.E002",
        ))
    for key in ("SUGGESTION_TOP_K", "CHECK_BATCH_SIZE", "AUDIT_CHUNK_SIZE", "AUDIT_DECODE_THREADS", "REVIEW_CLAIM_SECONDS"):
        value = getattr(listings_settings, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(Error(f"LISTINGS {key} {value!r} must be a positive integer.", id="listings.E003"))
    errors += review_settings_errors()
    return errors


def review_settings_errors():
    errors = []
    codes = listings_settings.REVIEW_REASON_CODES
    if (
        not isinstance(codes, (list, tuple)) or not codes or len(codes) > 9
        or not all(isinstance(code, str) and REASON_CODE.match(code) for code in codes)
        or len(set(codes)) != len(codes) or UNDO_REASON_CODE in codes
    ):
        errors.append(Error(
            f"LISTINGS REVIEW_REASON_CODES {codes!r} must be a list of 1 to 9 distinct codes "
            f"(lower-case letters, digits and _), without {UNDO_REASON_CODE!r}.",
            hint="Moderators pick them with the digits 1-9.",
            id="listings.E004",
        ))
    rate = listings_settings.REVIEW_SAMPLE_RATE
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
        errors.append(Error(f"LISTINGS REVIEW_SAMPLE_RATE {rate!r} must be a number between 0 and 1.", id="listings.E005"))
    return errors
