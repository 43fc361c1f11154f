"""Restrictions to build statements of reasons from: decisions recorded the product's way, every
registered reason type with its evidence, and personal data planted wherever a person could type it."""

import itertools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from listings import review
from listings.models import Listing, ModerationDecision

Status = Listing.Status

# Planted in users, texts, categories, notes and the reasons' free words: no statement may carry any of it.
SELLER = {"username": "jane.doevenport", "first_name": "Jane", "last_name": "Doevenport",
          "email": "jane.doevenport@example.com"}
MODERATOR = {"username": "max.mustermann", "first_name": "Maximilian", "last_name": "Mustermann",
             "email": "max.mustermann@example.org"}
SELLER_PK, MODERATOR_PK = 987651, 876542  # ids no statement field would hold by chance
PHONE = "+49 30 1234567"
SELLER_TEXT = f"Call Jane Doevenport on {PHONE} or write to jane.doevenport@example.com, @janedoe"
PLANTED = [
    SELLER["username"], SELLER["last_name"], SELLER["email"], "Jane",
    MODERATOR["username"], MODERATOR["first_name"], MODERATOR["last_name"], MODERATOR["email"],
    PHONE, "1234567", "@janedoe", "example.com", "example.org", str(SELLER_PK), str(MODERATOR_PK),
]

# A statement the database accepts (its rules' reference case).
ACCEPTED_STATEMENT = {
    "decision_visibility": ["DECISION_VISIBILITY_CONTENT_DISABLED"],
    "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
    "incompatible_content_ground": "Listing rules of the terms of service.",
    "incompatible_content_explanation": "The photos do not show the item offered.",
    "content_type": ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_PRODUCT", "CONTENT_TYPE_TEXT"],
    "category": "STATEMENT_CATEGORY_CONSUMER_INFORMATION",
    "category_specification": ["KEYWORD_MISLEADING_INFO_GOODS_SERVICES"],
    "decision_facts": "A moderator reviewed this listing and rejected it.",
    "source_type": "SOURCE_VOLUNTARY",
    "automated_detection": "Yes",
    "automated_decision": "AUTOMATED_DECISION_PARTIALLY",
    "content_date": "2026-07-01",
    "application_date": "2026-07-02",
    "territorial_scope": ["DE", "FR"],
    "content_language": "EN",
    "puid": "clipcheck-17-0a1b2c3d4e5f",
}

# One reason of every registered type, with its evidence as the checks store it; the seller's own
# words (a category typed at upload, a message quoting it) carry planted data.
EVERY_REASON = [
    {"code": "low_similarity", "field": "title", "score": 0.2104, "threshold": 0.25,
     "photo_looks_like": [{"category": "handbag", "score": 0.81}, {"category": "Jane Doevenport", "score": 0.7}],
     "message": f"The text scores 0.2104 against the photo, below the threshold 0.25. {SELLER_TEXT}"},
    {"code": "passage_mismatch", "field": "description", "score": 0.19, "threshold": 0.25, "passages": 4,
     "passage": {"index": 2, "start": 40, "end": 95}, "photo_looks_like": [],
     "message": "None of the 4 passages matches."},
    {"code": "attribute_conflict", "field": "title", "attribute": "colour", "text_says": "blue",
     "text_score": 0.21, "photo_shows": "red", "photo_shows_score": 0.31, "threshold": 0.25,
     "message": "The text says blue but the photo looks red (colour)."},
    {"code": "attribute_conflict", "field": "description", "attribute": "colour", "text_says": "jane.doevenport",
     "text_score": 0.2, "photo_shows": "red", "photo_shows_score": 0.3, "threshold": 0.25,
     "message": "The text says jane.doevenport but the photo looks red (colour)."},
    {"code": "object_conflict", "field": "title", "text_says": "shoes", "text_score": 0.2, "photo_shows": "handbag",
     "photo_shows_score": 0.4, "threshold": 0.25, "message": "The text says shoes, the photo shows handbag."},
    {"code": "category_conflict", "field": "category", "category": SELLER["email"], "category_score": 0.12,
     "photo_shows": "handbag", "photo_shows_score": 0.77,
     "message": f"The photo does not look like {SELLER['email']} (score 0.1200)."},
    {"code": "photos_differ", "field": "photos", "photo": 1, "similarity": 0.61, "threshold": 0.8,
     "message": "Photo 2 does not look like the same item as the first photo."},
    {"code": "photo_reused", "field": "photos", "listing_id": 4242, "similarity": 1.0, "seller_differs": True,
     "titles_conflict": True, "photo": 0, "layout_similarity": 0.99, "sha256": "ab" * 32,
     "message": f"Listing #4242 of another seller ({SELLER['email']}) shows the same photo."},
]


def people():
    """A seller and a moderator whose names, e-mails and ids are planted data."""
    users = get_user_model().objects
    seller = users.create_user(pk=SELLER_PK, password=None, **SELLER)
    moderator = users.create_user(pk=MODERATOR_PK, password=None, is_staff=True, **MODERATOR)
    return seller, moderator


_photos = itertools.count(1)


def listing_to_review(*, seller, reasons=(), status=Status.NEEDS_REVIEW, sampled=False, category=None):
    """A stored listing waiting for review (no photo file: decisions never read one)."""
    number = next(_photos)
    return Listing.objects.create(
        title=SELLER_TEXT, description=f"{SELLER_TEXT}. A red bag.", category=category or SELLER["email"],
        image=f"listings/test-{number}.png", image_sha256=f"{number:064x}", status=status, seller=seller,
        reasons=list(reasons), review_sampled=sampled,
    )


def reject(listing, moderator, *, reason_code="misleading_description", note=None, to_status=Status.REJECTED):
    """Decide ``listing`` the way the review screen's and change page's paths do (``decision_record``)."""
    return review.decision_record(
        listing=listing, moderator=moderator, to_status=to_status, reason_code=reason_code,
        note=SELLER_TEXT if note is None else note,
    )


def restrictions_seed(*, seller, moderator, count, reason_codes, age=timedelta(days=1)):
    """``count`` rejections decided ``age`` ago, cycling through ``reason_codes`` and the reason types
    (machine-flagged with one or all reasons, sampled approvals, unflagged); returns the decisions."""
    decisions = []
    for index in range(count):
        kind = index % 4
        if kind == 0:
            listing = listing_to_review(seller=seller, reasons=EVERY_REASON)
        elif kind == 1:
            listing = listing_to_review(seller=seller, reasons=[EVERY_REASON[index % len(EVERY_REASON)]])
        elif kind == 2:
            listing = listing_to_review(seller=seller, status=Status.APPROVED, sampled=True)
        else:
            listing = listing_to_review(seller=seller)
        decisions.append(reject(listing, moderator, reason_code=reason_codes[index % len(reason_codes)]))
    ModerationDecision.objects.filter(pk__in=[decision.pk for decision in decisions]).update(
        decided_at=timezone.now() - age
    )
    return list(ModerationDecision.objects.filter(pk__in=[d.pk for d in decisions]).order_by("pk"))
