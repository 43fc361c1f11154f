"""Settings of the listings app: one ``LISTINGS`` dict read through ``listings_settings``.

    LISTINGS = {"UPLOAD_POLICY": "reject"}

Validated by the system checks in ``listings.checks`` (``listings.E0xx``).
The CLIP model, threshold and quality bands come from ``CLIPCHECK``.
"""

from clipcheck.settings import AppSettings

SETTING_NAME = "LISTINGS"

UPLOAD_POLICIES = ("flag", "reject")

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
}

listings_settings = AppSettings(DEFAULTS, SETTING_NAME)
