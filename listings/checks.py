"""System checks for ``settings.LISTINGS`` (ids ``listings.E0xx`` / ``W0xx``)."""

import re

from django.conf import settings
from django.core.checks import Tags, Warning, register

from clipcheck.checks import SettingRule, _is_fraction, is_positive_integer, rule_errors, unknown_settings_errors
from listings.models import UNDO_REASON_CODE
from listings.settings import UPLOAD_POLICIES, listings_settings

REASON_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


def is_reason_code_list(codes):
    """1 to 9 distinct codes (the review screen's digits), none of them "undo"."""
    return (
        isinstance(codes, (list, tuple)) and 1 <= len(codes) <= 9 and len(set(codes)) == len(codes)
        and all(isinstance(code, str) and REASON_CODE.match(code) for code in codes)
        and UNDO_REASON_CODE not in codes
    )


def is_seconds(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9


def is_rate(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


# One line per setting: key, validator, id, message. Ids are stable.
RULES = (
    SettingRule("UPLOAD_POLICY", lambda policy: policy in UPLOAD_POLICIES, "listings.E002",
                "LISTINGS UPLOAD_POLICY {value!r} is not valid.", hint=f"Use one of {', '.join(UPLOAD_POLICIES)}."),
    *(
        SettingRule(key, is_positive_integer, "listings.E003", "LISTINGS {key} {value!r} must be a positive integer.")
        for key in (
            "SUGGESTION_TOP_K", "CHECK_BATCH_SIZE", "AUDIT_CHUNK_SIZE", "AUDIT_DECODE_THREADS", "MAX_PHOTOS",
            "REVIEW_CLAIM_SECONDS",
        )
    ),
    SettingRule("TITLE_CONFLICT_SIMILARITY", _is_fraction, "listings.E004",
                "LISTINGS TITLE_CONFLICT_SIMILARITY {value!r} must be a number between 0 and 1."),
    SettingRule("PHOTOS_SAME_ITEM_THRESHOLD", _is_fraction, "listings.E010",
                "LISTINGS {key} {value!r} must be a number between 0 and 1."),
    SettingRule("REVIEW_REASON_CODES", is_reason_code_list, "listings.E005",
                "LISTINGS REVIEW_REASON_CODES {value!r} must be a list of 1 to 9 distinct codes "
                f"(lower-case letters, digits and _), without {UNDO_REASON_CODE!r}.",
                hint="Moderators pick them with the digits 1-9."),
    SettingRule("REVIEW_SAMPLE_RATE", is_rate, "listings.E006",
                "LISTINGS REVIEW_SAMPLE_RATE {value!r} must be a number between 0 and 1."),
    SettingRule("AUDIT_STALL_SECONDS", is_seconds, "listings.E011",
                "LISTINGS AUDIT_STALL_SECONDS {value!r} must be a number of seconds (0 turns the watchdog off)."),
)


@register(Tags.compatibility)
def check_listings_settings(app_configs=None, **kwargs):
    return [*unknown_settings_errors(listings_settings, error_id="listings.E001"), *rule_errors(listings_settings, RULES)]


@register(Tags.compatibility)
def check_upload_file_limit(app_configs=None, **kwargs):
    """listings.W001: Django refuses a request with more files than
    DATA_UPLOAD_MAX_NUMBER_FILES before any view runs, so a limit below
    MAX_PHOTOS turns an upload the docs allow into 400 ``too_many_files``."""
    max_photos = listings_settings.MAX_PHOTOS
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    if not is_positive_integer(max_photos) or limit is None or limit >= max_photos:
        return []
    return [Warning(
        f"DATA_UPLOAD_MAX_NUMBER_FILES ({limit}) is below LISTINGS MAX_PHOTOS ({max_photos}): "
        f"an upload of more than {limit} photos is refused (400 too_many_files) before POST /upload sees it.",
        hint="Set DATA_UPLOAD_MAX_NUMBER_FILES to at least MAX_PHOTOS (clipproject/settings.py sets it from MAX_PHOTOS).",
        id="listings.W001",
    )]
