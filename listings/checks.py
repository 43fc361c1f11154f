"""System checks for ``settings.LISTINGS`` (ids ``listings.E0xx``)."""

from django.core.checks import Tags, register

from clipcheck.checks import SettingRule, _is_fraction, is_positive_integer, rule_errors, unknown_settings_errors
from listings.settings import UPLOAD_POLICIES, listings_settings

# One line per setting: key, validator, id, message. Ids are stable.
RULES = (
    SettingRule("UPLOAD_POLICY", lambda policy: policy in UPLOAD_POLICIES, "listings.E002",
                "LISTINGS UPLOAD_POLICY {value!r} is not valid.", hint=f"Use one of {', '.join(UPLOAD_POLICIES)}."),
    *(
        SettingRule(key, is_positive_integer, "listings.E003", "LISTINGS {key} {value!r} must be a positive integer.")
        for key in ("SUGGESTION_TOP_K", "CHECK_BATCH_SIZE", "AUDIT_CHUNK_SIZE", "AUDIT_DECODE_THREADS", "MAX_PHOTOS")
    ),
    SettingRule("TITLE_CONFLICT_SIMILARITY", _is_fraction, "listings.E004",
                "LISTINGS TITLE_CONFLICT_SIMILARITY {value!r} must be a number between 0 and 1."),
    SettingRule("PHOTOS_SAME_ITEM_THRESHOLD", _is_fraction, "listings.E010",
                "LISTINGS {key} {value!r} must be a number between 0 and 1."),
)


@register(Tags.compatibility)
def check_listings_settings(app_configs=None, **kwargs):
    return [*unknown_settings_errors(listings_settings, error_id="listings.E001"), *rule_errors(listings_settings, RULES)]
