"""System checks for ``settings.LISTINGS`` (ids ``listings.E0xx``)."""

from django.core.checks import Error, Tags, register

from clipcheck.checks import unknown_settings_errors
from listings.settings import UPLOAD_POLICIES, listings_settings


@register(Tags.compatibility)
def check_listings_settings(app_configs=None, **kwargs):
    errors = unknown_settings_errors(listings_settings, error_id="listings.E001")
    if listings_settings.UPLOAD_POLICY not in UPLOAD_POLICIES:
        errors.append(Error(
            f"LISTINGS UPLOAD_POLICY {listings_settings.UPLOAD_POLICY!r} is not valid.",
            hint=f"Use one of {', '.join(UPLOAD_POLICIES)}.",
            id="listings.E002",
        ))
    for key in ("SUGGESTION_TOP_K", "CHECK_BATCH_SIZE", "AUDIT_CHUNK_SIZE", "AUDIT_DECODE_THREADS", "MAX_PHOTOS"):
        value = getattr(listings_settings, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(Error(f"LISTINGS {key} {value!r} must be a positive integer.", id="listings.E003"))
    same_item = listings_settings.PHOTOS_SAME_ITEM_THRESHOLD
    if not isinstance(same_item, (int, float)) or isinstance(same_item, bool) or not 0 <= same_item <= 1:
        errors.append(Error(
            f"LISTINGS PHOTOS_SAME_ITEM_THRESHOLD {same_item!r} must be a number between 0 and 1.",
            id="listings.E010",
        ))
    return errors
