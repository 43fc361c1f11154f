"""System checks for ``settings.LISTINGS`` (ids ``listings.E0xx`` / ``W0xx``).

A bad value of one key is reported by the check its declaration names
(``LISTINGS_TABLE`` in ``listings.settings``, where every id is declared); the
functions here judge what needs more than one key or Django's own settings.
"""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from clipcheck.settings_table import is_positive_integer, unknown_settings_errors
from listings.settings import LISTINGS_TABLE, is_reason_code_list, listings_settings
from listings.statement_rules import enumeration, field_rules


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


@register(Tags.compatibility)
def check_listings_settings(app_configs=None, **kwargs):
    return [
        *unknown_settings_errors(listings_settings, error_id="listings.E001"),
        *LISTINGS_TABLE.check_messages(listings_settings),
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
