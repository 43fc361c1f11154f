"""System checks for ``settings.LISTINGS`` (ids ``listings.E0xx`` / ``W0xx``)."""

import re

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from clipcheck.checks import SettingRule, _is_fraction, is_positive_integer, rule_errors, unknown_settings_errors
from listings.models import UNDO_REASON_CODE
from listings.settings import UPLOAD_POLICIES, listings_settings
from listings.statement_rules import enumeration, field_rules, statement_errors

REASON_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
PUID_NAMESPACE = re.compile(r"^[A-Za-z0-9_]{1,40}$")


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


def is_visibility_list(value):
    """One or more of the database's visibility restrictions, except "other" (it would need words of its own)."""
    accepted = set(enumeration("DECISION_VISIBILITIES")) - {"DECISION_VISIBILITY_OTHER"}
    return isinstance(value, (list, tuple)) and bool(value) and all(item in accepted for item in value)


def is_terms_url(value):
    return value is None or not statement_errors_of("decision_ground_reference_url", value)


def is_country_list(value):
    accepted = set(enumeration("EUROPEAN_COUNTRY_CODES"))
    return value is None or (isinstance(value, (list, tuple)) and bool(value) and all(item in accepted for item in value))


def is_language(value):
    return value is None or value in enumeration("LANGUAGES")


def is_puid_namespace(value):
    return isinstance(value, str) and bool(PUID_NAMESPACE.match(value))


def statement_errors_of(field, value):
    """The database's rule for one field, applied to ``value`` alone."""
    return statement_errors({field: value}).get(field, [])


def statement_reason_code_problem(terms):
    """What is wrong with one entry of STATEMENT_REASON_CODES, or None."""
    if not isinstance(terms, dict):
        return "must be a dict with category, category_specification, ground and explanation"
    unknown = set(terms) - {"category", "category_specification", "ground", "explanation"}
    if unknown:
        return f"has unknown keys {', '.join(sorted(unknown))}"
    if terms.get("category") not in enumeration("STATEMENT_CATEGORIES"):
        return f"category {terms.get('category')!r} is not one of the database's STATEMENT_CATEGORY_* values"
    keywords = terms.get("category_specification", [])
    if not isinstance(keywords, (list, tuple)) or any(keyword not in enumeration("KEYWORDS") for keyword in keywords):
        return f"category_specification {keywords!r} must be a list of the database's KEYWORD_* values"
    for key, field in (("ground", "incompatible_content_ground"), ("explanation", "incompatible_content_explanation")):
        text = terms.get(key)
        limit = field_rules()[field]["max"]
        if not isinstance(text, str) or not text.strip() or len(text) > limit:
            return f"{key} must be words of at most {limit} characters"
    return None


def statement_reason_codes_errors():
    """listings.E012: every review reason code maps to a category, keywords, ground and explanation the
    database accepts (docs/compliance.md)."""
    table = listings_settings.STATEMENT_REASON_CODES
    if not isinstance(table, dict):
        return [Error("LISTINGS STATEMENT_REASON_CODES must be a dict: review reason code → its statement terms.",
                      id="listings.E012")]
    codes = listings_settings.REVIEW_REASON_CODES
    missing = [code for code in codes if code not in table] if is_reason_code_list(codes) else []
    if missing:
        return [Error(
            f"LISTINGS STATEMENT_REASON_CODES has no entry for the review reason code(s) {', '.join(missing)}.",
            hint="Each rejection's statement of reasons takes its category and ground from it.", id="listings.E012",
        )]
    for code, terms in table.items():
        problem = statement_reason_code_problem(terms)
        if problem:
            return [Error(f"LISTINGS STATEMENT_REASON_CODES[{code!r}]: {problem}.", id="listings.E012",
                          hint="The DSA Transparency Database's values: listings/statement_rules.json.")]
    return []


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
    SettingRule("STATEMENT_DECISION_VISIBILITY", is_visibility_list, "listings.E013",
                "LISTINGS STATEMENT_DECISION_VISIBILITY {value!r} must be a non-empty list of the Transparency "
                "Database's DECISION_VISIBILITY_* values (not DECISION_VISIBILITY_OTHER)."),
    SettingRule("STATEMENT_TERMS_URL", is_terms_url, "listings.E014",
                "LISTINGS STATEMENT_TERMS_URL {value!r} must be None or a URL of at most 500 characters."),
    SettingRule("STATEMENT_TERRITORIAL_SCOPE", is_country_list, "listings.E015",
                "LISTINGS STATEMENT_TERRITORIAL_SCOPE {value!r} must be None or a non-empty list of EU/EEA "
                "country codes (\"DE\", \"FR\", ...).", hint="The database accepts: "
                + ", ".join(enumeration("EUROPEAN_COUNTRY_CODES")) + "."),
    SettingRule("STATEMENT_CONTENT_LANGUAGE", is_language, "listings.E016",
                "LISTINGS STATEMENT_CONTENT_LANGUAGE {value!r} must be None or an upper-case ISO 639-1 code "
                "(\"EN\", \"DE\", ...)."),
    SettingRule("STATEMENT_PUID_NAMESPACE", is_puid_namespace, "listings.E017",
                "LISTINGS STATEMENT_PUID_NAMESPACE {value!r} must be 1 to 40 letters, digits or _.",
                hint="It starts every statement's puid: one per installation, never changed once statements were sent."),
    SettingRule("STATEMENT_SUBMIT_DELAY_SECONDS", is_seconds, "listings.E018",
                "LISTINGS STATEMENT_SUBMIT_DELAY_SECONDS {value!r} must be a number of seconds (0 sends at once)."),
    SettingRule("APPEAL_WINDOW_DAYS", is_positive_integer, "listings.E019",
                "LISTINGS APPEAL_WINDOW_DAYS {value!r} must be a positive whole number of days.",
                hint="Sellers may contest a rejection for at least six months (DSA Article 20): 183 or more."),
    SettingRule("APPEAL_TEXT_MAX_LENGTH", is_positive_integer, "listings.E020",
                "LISTINGS APPEAL_TEXT_MAX_LENGTH {value!r} must be a positive whole number of characters."),
)


@register(Tags.compatibility)
def check_listings_settings(app_configs=None, **kwargs):
    return [
        *unknown_settings_errors(listings_settings, error_id="listings.E001"), *rule_errors(listings_settings, RULES),
        *statement_reason_codes_errors(),
    ]


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
