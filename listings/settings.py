"""Settings of the listings app: one ``LISTINGS`` dict read through ``listings_settings``.

    LISTINGS = {"UPLOAD_POLICY": "reject"}

Every key is declared once in ``LISTINGS_TABLE`` (``clipcheck.settings_table``):
default, kind, check id, environment variable, docs line. Validated by the
system checks in ``listings.checks`` (``listings.E0xx``). The CLIP model,
threshold and quality bands come from ``CLIPCHECK``.
"""

import re

from clipcheck.settings import AppSettings
from clipcheck.settings_table import (
    LOWER_TEXT,
    SECONDS,
    TEXT,
    Check,
    Kind,
    Setting,
    SettingsTable,
    choice,
    fraction,
    positive_integer,
    settings_table_register,
    structure,
)
from listings.statement_rules import enumeration, statement_errors

SETTING_NAME = "LISTINGS"

UPLOAD_POLICIES = ("flag", "reject")
REASON_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
PUID_NAMESPACE = re.compile(r"^[A-Za-z0-9_]{1,40}$")

# Statements of reasons (docs/compliance.md): for each review reason code, the
# DSA Transparency Database's category and keywords (its enumerations,
# listings/statement_rules.json), the ground in the terms and an explanation in
# plain words. Write "ground" and "explanation" as your terms say them.
DEFAULT_STATEMENT_REASON_CODES = {
    "misleading_description": {
        "category": "STATEMENT_CATEGORY_CONSUMER_INFORMATION",
        "category_specification": ["KEYWORD_MISLEADING_INFO_GOODS_SERVICES"],
        "ground": "Listing rules of the terms of service: a listing's title and description describe the item "
                  "its photos show.",
        "explanation": "The title or description of the listing does not describe the item shown in its photos. "
                       "Buyers would be misled about the goods offered, so the listing is not shown until it is "
                       "corrected.",
    },
    "wrong_category": {
        "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
        "category_specification": [],
        "ground": "Listing rules of the terms of service: a listing is placed in the category of the item it offers.",
        "explanation": "The listing is placed in a category that does not fit the item shown in its photos, so "
                       "buyers browsing that category would be offered an item that does not belong there.",
    },
    "wrong_photo": {
        "category": "STATEMENT_CATEGORY_CONSUMER_INFORMATION",
        "category_specification": ["KEYWORD_MISLEADING_INFO_GOODS_SERVICES"],
        "ground": "Listing rules of the terms of service: a listing's photos show the item offered.",
        "explanation": "The photos of the listing do not show the item its title and description offer. Buyers "
                       "would be misled about the goods offered, so the listing is not shown until it is corrected.",
    },
    "prohibited": {
        "category": "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS",
        "category_specification": ["KEYWORD_PROHIBITED_PRODUCTS"],
        "ground": "Prohibited items rules of the terms of service: items the marketplace does not allow are not "
                  "listed.",
        "explanation": "The item offered is one that the marketplace's terms do not allow to be sold.",
    },
    "duplicate": {
        "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
        "category_specification": [],
        "ground": "Listing rules of the terms of service: each item is listed once, with photos of its own.",
        "explanation": "The listing repeats a listing already on the marketplace: the same item, or the same photo.",
    },
    "other": {
        "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
        "category_specification": [],
        "ground": "Listing rules of the terms of service.",
        "explanation": "A moderator found that the listing breaks the marketplace's listing rules.",
    },
}


def is_reason_code_list(codes):
    """1 to 9 distinct codes (the review screen's digits), none of them "undo"."""
    from listings.models import UNDO_REASON_CODE  # imported when judged: the settings load before the models

    return (
        isinstance(codes, (list, tuple)) and 1 <= len(codes) <= 9 and len(set(codes)) == len(codes)
        and all(isinstance(code, str) and REASON_CODE.match(code) for code in codes)
        and UNDO_REASON_CODE not in codes
    )


def is_visibility_list(value):
    """One or more of the database's visibility restrictions, except "other" (it would need words of its own)."""
    accepted = set(enumeration("DECISION_VISIBILITIES")) - {"DECISION_VISIBILITY_OTHER"}
    return isinstance(value, (list, tuple)) and bool(value) and all(item in accepted for item in value)


def statement_errors_of(field, value):
    """The database's rule for one field, applied to ``value`` alone."""
    return statement_errors({field: value}).get(field, [])


def is_terms_url(value):
    return not statement_errors_of("decision_ground_reference_url", value)


def is_country_list(value):
    accepted = set(enumeration("EUROPEAN_COUNTRY_CODES"))
    return isinstance(value, (list, tuple)) and bool(value) and all(item in accepted for item in value)


def is_language(value):
    return value in enumeration("LANGUAGES")


def is_puid_namespace(value):
    return isinstance(value, str) and bool(PUID_NAMESPACE.match(value))


UPLOAD_POLICY = choice(*UPLOAD_POLICIES)
REASON_CODES = structure(
    "list of 1-9 codes", is_reason_code_list,
    "{name} {value!r} must be a list of 1 to 9 distinct codes (lower-case letters, digits and _), without 'undo'.",
)
# Judged with REVIEW_REASON_CODES by listings.checks.statement_reason_codes_errors.
STATEMENT_TERMS = structure("reason code → statement terms", None)
VISIBILITIES = structure(
    "list of `DECISION_VISIBILITY_*`", is_visibility_list,
    "{name} {value!r} must be a non-empty list of the Transparency Database's DECISION_VISIBILITY_* values "
    "(not DECISION_VISIBILITY_OTHER).",
)
TERMS_URL = Kind("URL", is_terms_url, "{name} {value!r} must be {none}a URL of at most 500 characters.", TEXT)
COUNTRIES = structure(
    "list of country codes", is_country_list,
    "{name} {value!r} must be {none}a non-empty list of EU/EEA country codes (\"DE\", \"FR\", ...).",
)
LANGUAGE = Kind("ISO 639-1 code", is_language,
                "{name} {value!r} must be {none}an upper-case ISO 639-1 code (\"EN\", \"DE\", ...).", TEXT)
PUID_PREFIX = Kind("1-40 letters, digits, _", is_puid_namespace, "{name} {value!r} must be 1 to 40 letters, digits or _.",
                   TEXT)


LISTINGS_TABLE = settings_table_register(SettingsTable(
    name=SETTING_NAME,
    reader="listings.settings.listings_settings",
    settings=(
        # What POST /upload does when the description does not match the photo.
        Setting("UPLOAD_POLICY", "flag", UPLOAD_POLICY, check="listings.E002", env="LISTINGS_UPLOAD_POLICY",
                parser=LOWER_TEXT, hint=f"Use one of {', '.join(UPLOAD_POLICIES)}.",
                doc="`\"flag\"`: store a mismatching upload as `needs_review` (queued for a moderator); `\"reject\"`: "
                    "answer 422 with a suggestion and store nothing"),
        Setting("SUGGESTION_TOP_K", 2, positive_integer(), check="listings.E003",
                doc="confident categories (standalone score above 0.5) named in a mismatch reason and the suggestion"),
        # POST /upload's repeated "file" field.
        Setting("MAX_PHOTOS", 10, positive_integer(), check="listings.E003",
                doc="photos per listing; the project sets `DATA_UPLOAD_MAX_NUMBER_FILES` from it (`listings.W001`)"),
        # Checkpoint-dependent.
        Setting("PHOTOS_SAME_ITEM_THRESHOLD", 0.8, fraction(), check="listings.E010",
                doc="photo-to-photo embedding cosine below which a listing gets `photos_differ` "
                    "([verdicts.md](verdicts.md#a-whole-listing))"),
        Setting("CHECK_BATCH_SIZE", 32, positive_integer(), check="listings.E003",
                doc="listings per encode call when the admin re-checks many"),
        # Rows read per keyset query, results committed per chunk, listings
        # per task in the distributed mode.
        Setting("AUDIT_CHUNK_SIZE", 256, positive_integer(), check="listings.E003",
                doc="`clip_audit`: listings per chunk (its default `--chunk-size`)"),
        Setting("AUDIT_DECODE_THREADS", 4, positive_integer(), check="listings.E003",
                doc="`clip_audit`: threads that read and decode images ahead of the model"),
        # A 256-listing chunk takes 10-20 s with ViT-B/32 on 2 cores: the
        # default leaves room for slower models and a first model load.
        Setting("AUDIT_STALL_SECONDS", 600, SECONDS, check="listings.E011", env="LISTINGS_AUDIT_STALL_SECONDS",
                message="{name} {value!r} must be a number of seconds (0 turns the watchdog off).",
                doc="`clip_audit` and `clip_demo` end with status 3 (1 when the GIL is held), every thread's stack on "
                    "stderr, once no chunk has finished for this long; a distributed chunk task is killed past it "
                    "(0: off; [audit.md](audit.md))"),
        Setting("TITLE_CONFLICT_SIMILARITY", 0.85, fraction(), check="listings.E004",
                doc="a reused photo's titles conflict when their text embeddings' cosine is below this "
                    "(`photo_reused`'s `titles_conflict`)"),
        # The review workbench (docs/moderation.md).
        Setting("REVIEW_REASON_CODES", [
            "misleading_description", "wrong_category", "wrong_photo", "prohibited", "duplicate", "other",
        ], REASON_CODES, check="listings.E005", hint="Moderators pick them with the digits 1-9.",
            doc="the reasons a moderator picks from when rejecting (digits 1-9 in the review screen, in this "
                "order; [moderation.md](moderation.md))"),
        Setting("REVIEW_CLAIM_SECONDS", 300, positive_integer(), check="listings.E003",
                doc="how long opening a listing claims it"),
        # Unbiased labels for clip_calibrate.
        Setting("REVIEW_SAMPLE_RATE", 0.02, fraction(), check="listings.E006",
                doc="share of machine-approved listings also sent to people"),
        # Statements of reasons for the DSA Transparency Database
        # (docs/compliance.md, manage.py clip_statements).
        Setting("STATEMENT_REASON_CODES", DEFAULT_STATEMENT_REASON_CODES, STATEMENT_TERMS, check="listings.E012",
                shown_default="[compliance.md](compliance.md#the-mapping-settings)",
                doc="per review reason code the database's `category`, `category_specification`, the `ground` in "
                    "the terms and an `explanation` in plain words: every code of `REVIEW_REASON_CODES` (a "
                    "decision with another code or none uses `other`'s)"),
        Setting("STATEMENT_DECISION_VISIBILITY", ["DECISION_VISIBILITY_CONTENT_DISABLED"], VISIBILITIES,
                check="listings.E013", doc="what a rejection does to the listing's visibility"),
        Setting("STATEMENT_TERMS_URL", None, TERMS_URL, check="listings.E014", none=True,
                doc="the address of the terms relied on (`None`: not stated)"),
        Setting("STATEMENT_TERRITORIAL_SCOPE", None, COUNTRIES, check="listings.E015", none=True,
                hint="The database accepts: " + ", ".join(enumeration("EUROPEAN_COUNTRY_CODES")) + ".",
                doc="EU/EEA country codes where rejections apply (`None`: not stated)"),
        Setting("STATEMENT_CONTENT_LANGUAGE", None, LANGUAGE, check="listings.E016", none=True,
                doc="the listings' language, ISO 639-1 upper case (`None`: not stated)"),
        Setting("STATEMENT_PUID_NAMESPACE", "clipcheck", PUID_PREFIX, check="listings.E017",
                hint="It starts every statement's puid: one per installation, never changed once statements were sent.",
                doc="starts every statement's puid: one per installation, never changed once statements were sent"),
        # An undo within that time sends nothing.
        Setting("STATEMENT_SUBMIT_DELAY_SECONDS", 3600, SECONDS, check="listings.E018",
                message="{name} {value!r} must be a number of seconds (0 sends at once).",
                doc="how old a decision must be before `clip_statements --submit` sends it"),
        # Appeals (docs/compliance.md#appeals): POST /listings/<id>/appeal; the
        # Digital Services Act asks for at least six months.
        Setting("APPEAL_WINDOW_DAYS", 183, positive_integer(), check="listings.E019",
                message="{name} {value!r} must be a positive whole number of days.",
                hint="Sellers may contest a rejection for at least six months (DSA Article 20): 183 or more.",
                doc="how many days after a rejection its seller may contest it"),
        Setting("APPEAL_TEXT_MAX_LENGTH", 5000, positive_integer(), check="listings.E020",
                message="{name} {value!r} must be a positive whole number of characters.",
                doc="the most characters a seller's appeal may have"),
    ),
    checks=(
        Check("listings.E001", "a key that `LISTINGS` does not have (a typo)"),
        Check("listings.E002", "not an upload policy"),
        Check("listings.E003", "not a positive integer"),
        Check("listings.E004", "a title conflict similarity outside [0, 1]"),
        Check("listings.E005", "review reason codes that are not 1 to 9 distinct codes, without `undo`"),
        Check("listings.E006", "a review sample rate outside [0, 1]"),
        Check("listings.E010", "a same-item threshold outside [0, 1]"),
        Check("listings.E011", "an audit stall time that is not a number of seconds"),
        Check("listings.E012", "statement terms missing for a review reason code, or not what the database accepts",
              keys=("STATEMENT_REASON_CODES", "REVIEW_REASON_CODES")),
        Check("listings.E013", "visibility restrictions that are not the database's (or its `..._OTHER`)"),
        Check("listings.E014", "a terms address that is not a URL of at most 500 characters"),
        Check("listings.E015", "a territorial scope that is not EU/EEA country codes"),
        Check("listings.E016", "a content language that is not an upper-case ISO 639-1 code"),
        Check("listings.E017", "a puid namespace that is not 1 to 40 letters, digits or _"),
        Check("listings.E018", "a submit delay that is not a number of seconds"),
        Check("listings.E019", "an appeal window that is not a positive whole number of days"),
        Check("listings.E020", "an appeal text limit that is not a positive whole number of characters"),
        Check("listings.W001", "Django's `DATA_UPLOAD_MAX_NUMBER_FILES` below `MAX_PHOTOS`: bigger uploads are refused "
                               "before the view", keys=("MAX_PHOTOS",)),
    ),
))

DEFAULTS = LISTINGS_TABLE.defaults()

listings_settings = AppSettings(DEFAULTS, SETTING_NAME)
