"""Settings of the listings app: one ``LISTINGS`` dict read through ``listings_settings``.

    LISTINGS = {"UPLOAD_POLICY": "reject"}

Validated by the system checks in ``listings.checks`` (``listings.E0xx``).
The CLIP model, threshold and quality bands come from ``CLIPCHECK``.
"""

from clipcheck.settings import AppSettings

SETTING_NAME = "LISTINGS"

UPLOAD_POLICIES = ("flag", "reject")

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

DEFAULTS = {
    # What POST /upload does when the description does not match the photo:
    # "flag" stores the listing as needs_review (queued for a moderator);
    # "reject" answers 422 with a suggestion and stores nothing.
    "UPLOAD_POLICY": "flag",
    # Categories named in the suggestion to the seller on a mismatch (only
    # those whose standalone score is above 0.5).
    "SUGGESTION_TOP_K": 2,
    # Photos per listing (POST /upload's repeated "file" field).
    "MAX_PHOTOS": 10,
    # Two photos of one listing show the same item when the cosine of their
    # image embeddings is at least this; below it the listing gets
    # "photos_differ" (docs/verdicts.md). Checkpoint-dependent.
    "PHOTOS_SAME_ITEM_THRESHOLD": 0.8,
    # Listings per encode call when re-checking many (admin action).
    "CHECK_BATCH_SIZE": 32,
    # clip_audit: listings per chunk (rows read per keyset query, results
    # committed per chunk, listings per task in the distributed mode) and
    # the threads that read and decode images ahead of the model.
    "AUDIT_CHUNK_SIZE": 256,
    "AUDIT_DECODE_THREADS": 4,
    # clip_audit and clip_demo end with status 3 (1 when the GIL is held),
    # every thread's stack on stderr, once no chunk has finished for this many
    # seconds; a distributed audit's chunk task is killed past it (Celery's
    # hard time limit). 0 turns the watchdog off. A 256-listing chunk takes
    # 10-20 s with ViT-B/32 on 2 cores: the default leaves room for slower
    # models and a first model load (docs/audit.md).
    "AUDIT_STALL_SECONDS": 600,
    # A reused photo's titles "conflict" when the cosine of their CLIP text
    # embeddings is below this (the photo_reused reason's titles_conflict).
    "TITLE_CONFLICT_SIMILARITY": 0.85,
    # The review workbench (docs/moderation.md): the reason codes a
    # moderator picks from when rejecting (digits 1-9 in the review screen,
    # in this order), how long opening a listing claims it, and the share of
    # machine-approved listings also sent to people (unbiased labels for
    # clip_calibrate).
    "REVIEW_REASON_CODES": [
        "misleading_description", "wrong_category", "wrong_photo", "prohibited", "duplicate", "other",
    ],
    "REVIEW_CLAIM_SECONDS": 300,
    "REVIEW_SAMPLE_RATE": 0.02,
    # Statements of reasons for the DSA Transparency Database
    # (docs/compliance.md, manage.py clip_statements): the category, keywords,
    # ground and explanation per review reason code (every code of
    # REVIEW_REASON_CODES; a decision with another code or none uses "other"'s); what a rejection does to the listing's visibility; the terms'
    # address; where the decision applies and the listings' language (None:
    # not stated); the prefix of every statement's puid (one per
    # installation, never changed once statements were sent); and how old a
    # decision must be before --submit sends it (an undo within that time
    # sends nothing).
    "STATEMENT_REASON_CODES": DEFAULT_STATEMENT_REASON_CODES,
    "STATEMENT_DECISION_VISIBILITY": ["DECISION_VISIBILITY_CONTENT_DISABLED"],
    "STATEMENT_TERMS_URL": None,
    "STATEMENT_TERRITORIAL_SCOPE": None,
    "STATEMENT_CONTENT_LANGUAGE": None,
    "STATEMENT_PUID_NAMESPACE": "clipcheck",
    "STATEMENT_SUBMIT_DELAY_SECONDS": 3600,
    # Appeals (docs/compliance.md#appeals): how many days after a rejection
    # its seller may contest it (POST /listings/<id>/appeal; the Digital
    # Services Act asks for at least six months), and the most characters
    # the seller's text may have.
    "APPEAL_WINDOW_DAYS": 183,
    "APPEAL_TEXT_MAX_LENGTH": 5000,
}

listings_settings = AppSettings(DEFAULTS, SETTING_NAME)
