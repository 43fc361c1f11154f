"""Listing-level reasons: the category and the photos of one listing.

The texts' reasons come from ``clipcheck.verdicts`` (each text judged
against the best of the listing's photos); this module adds:

- ``category_conflict``: the listing names a category whose standalone
  classify score is not above 0.5 on any photo, while another catalogue
  category's is; that one is named (``photo_shows``).
- ``photos_differ``: a photo whose image embedding's cosine with the
  primary photo's is below ``LISTINGS["PHOTOS_SAME_ITEM_THRESHOLD"]``.
"""

import numpy as np
from django.utils.translation import gettext as _

from clipcheck import reasons as reason_kinds
from clipcheck import scoring
from clipcheck.reasons import Evidence, ReasonType, reason_type_register
from clipcheck.services.classification import images_classify
from clipcheck.settings import clip_settings
from clipcheck.verdicts import CONFIDENT_CATEGORY_SCORE, reasons_for_field
from listings.settings import listings_settings


def category_conflict(*, category, photos, vectors):
    """The ``category_conflict`` reason for ``category`` on these photos, or None."""
    category = (category or "").strip()
    if not category:
        return None
    catalogue = list(dict.fromkeys([*clip_settings.CATEGORIES, category]))
    expected_score, best_other = 0.0, None
    # One classification for all the photos: the prompts are encoded once.
    for matches in images_classify(image_embeddings=vectors, categories=catalogue, top_k=len(catalogue)):
        for match in matches:
            if match["category"] == category:
                expected_score = max(expected_score, match["score"])
            elif best_other is None or match["score"] > best_other["score"]:
                best_other = match
    if expected_score > CONFIDENT_CATEGORY_SCORE or best_other is None:
        return None
    if best_other["score"] <= CONFIDENT_CATEGORY_SCORE:
        return None
    return {
        "code": "category_conflict", "field": "category",
        "message": _(
            "The photo does not look like {category} (score {category_score}); it looks like {photo_shows} "
            "(score {photo_shows_score})."
        ).format(category=category, category_score=f"{expected_score:.4f}", photo_shows=best_other["category"],
                 photo_shows_score=f"{best_other['score']:.4f}"),
        "category": category, "category_score": expected_score,
        "photo_shows": best_other["category"], "photo_shows_score": best_other["score"],
    }


def photos_differ(*, vectors, threshold=None):
    """A ``photos_differ`` reason per photo that does not show the primary photo's item."""
    threshold = float(listings_settings.PHOTOS_SAME_ITEM_THRESHOLD if threshold is None else threshold)
    vectors = np.asarray(vectors)
    reasons = []
    for position in range(1, len(vectors)):
        similarity = scoring.similarity_score(float(vectors[0] @ vectors[position]))
        if similarity < threshold:
            reasons.append({
                "code": "photos_differ", "field": "photos",
                "message": _(
                    "Photo {photo} does not look like the same item as the first photo (similarity {similarity}, "
                    "below {threshold})."
                ).format(photo=position + 1, similarity=f"{similarity:.4f}", threshold=f"{threshold:.4f}"),
                "photo": position, "similarity": similarity, "threshold": threshold,
            })
    return reasons


reason_type_register(ReasonType(
    code="category_conflict", label="Photo does not fit the category",
    about="The listing's category scores 0.5 or less on every photo, while another category scores above 0.5.",
    evidence=(
        Evidence("category", "Category given", reason_kinds.WORD),
        Evidence("category_score", "Its score", reason_kinds.SUPPORT),
        Evidence("photo_shows", "The photo shows", reason_kinds.WORD),
        Evidence("photo_shows_score", "Its score", reason_kinds.SUPPORT),
    ),
    sentence=lambda reason: (
        f"The photo does not look like {reason['category']} (score {reason['category_score']:.2f}); "
        f"it looks like {reason['photo_shows']} (score {reason['photo_shows_score']:.2f})."
    ),
    suggestion=lambda reason, reasons: _("The photo looks like {photo_shows}, not {category}: check the category.").format(
        photo_shows=reason["photo_shows"], category=reason["category"]),
))
reason_type_register(ReasonType(
    code="photos_differ", label="Photos show different items",
    about="A photo's image embedding is far from the first photo's (PHOTOS_SAME_ITEM_THRESHOLD).",
    evidence=(
        Evidence("photo", "Photo", reason_kinds.PHOTO),
        Evidence("similarity", "Similarity to the first photo", reason_kinds.SCORE),
        Evidence("threshold", "Same-item threshold", reason_kinds.THRESHOLD),
    ),
    sentence=lambda reason: (
        f"Photo {reason['photo'] + 1} does not look like the same item as the first photo "
        f"(similarity {reason['similarity']:.3f}, below {reason['threshold']:.3f})."
    ),
    suggestion=lambda reason, reasons: _("Photo {photo} does not seem to show the same item as the first photo.").format(
        photo=reason["photo"] + 1),
))


def listing_reasons(*, title_analysis, description_analysis, extra=()):
    """All reasons of a listing check, texts first, each text's under its field name."""
    reasons = []
    if title_analysis is not None:
        reasons += reasons_for_field(title_analysis.reasons, "title")
    if description_analysis is not None:
        reasons += reasons_for_field(description_analysis.reasons, "description")
    return reasons + list(extra)
