"""Reused photos and catalogue search: the listings side of clipcheck's similarity search.

- ``photo_reused_reasons``: at upload and in every check, a listing whose
  photo is a near-duplicate of an earlier listing's (the same bytes
  included) gets a ``photo_reused`` reason naming that listing, and goes to
  review. The earlier listing owns its photo: a copy never sends the
  original to review. A seller is told only that the photo is already used
  (``reasons_for_seller``); which listing, whose and under which title is
  for moderators.
- ``listings_search``: the catalogue's listings nearest to a text or a photo
  (``POST /clip/search`` and the admin's search page).

Which listings show a photo is asked of ``listings.selectors`` only.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from django.utils import translation
from django.utils.translation import gettext_lazy

from clipcheck import reasons as reason_kinds
from clipcheck.engine import get_engine
from clipcheck.engine.admission import run_inference
from clipcheck.images import DecodedImage
from clipcheck.nearduplicates import NearDuplicate, layout_signature, near_duplicates
from clipcheck.reasons import Evidence, ReasonType, reason_type_register
from clipcheck.services.embeddings import image_embeddings_compute
from clipcheck.services.thresholds import model_id
from clipcheck.vectors import VectorLike, image_neighbours
from listings import selectors
from listings.models import Listing
from listings.settings import listings_settings

PHOTO_REUSED = "photo_reused"
# All a seller is told of a reused photo (in the active language: the seller's, where the caller chose it).
SELLER_MESSAGE = gettext_lazy("This photo is already used by another listing.")


def _reused_sentence(reason: Mapping[str, Any]) -> str:
    sellers: dict[bool | None, str] = {True: " of another seller", False: " of the same seller"}
    whose = sellers.get(reason.get("seller_differs"), "")
    same = "the same photo" if reason["similarity"] >= 0.9999 else "a near-identical photo"
    sentence = f"Listing #{reason['listing_id']}{whose} shows {same} (similarity {reason['similarity']:.3f})"
    return sentence + (" under a different title." if reason.get("titles_conflict") else ".")


reason_type_register(ReasonType(
    code=PHOTO_REUSED, label="Photo already used by another listing",
    about="An earlier listing shows the same photo or a near-identical copy (it is named; it is never flagged itself).",
    evidence=(
        Evidence("listing_id", "Other listing", reason_kinds.LISTING),
        Evidence("similarity", "Similarity", reason_kinds.SUPPORT),
        Evidence("seller_differs", "Another seller", reason_kinds.FLAG),
        Evidence("titles_conflict", "Titles say different things", reason_kinds.FLAG),
        Evidence("photo", "Photo", reason_kinds.PHOTO),
        Evidence("layout_similarity", "Layout similarity", reason_kinds.SUPPORT, shown=False),
        Evidence("sha256", "Photo hash", reason_kinds.WORD, shown=False),
    ),
    sentence=_reused_sentence,
    suggestion=lambda reason, reasons: str(SELLER_MESSAGE),
))


def reasons_for_seller(reasons: Iterable[dict[str, Any]], language: str | None = None) -> list[dict[str, Any]]:
    """``reasons`` as the seller who uploaded may read them: a ``photo_reused``
    reason says that the photo (which of theirs, ``photo``) is already used by
    another listing; which listing, whose, under which title and how alike
    stay with moderators and the stored record. ``language``: the seller's (None: the active one)."""
    with translation.override(language or translation.get_language()):
        seller_message = str(SELLER_MESSAGE)
    return [
        {"code": PHOTO_REUSED, "field": reason.get("field", "photos"), "message": seller_message,
         **({"photo": reason["photo"]} if "photo" in reason else {})}
        if reason.get("code") == PHOTO_REUSED else reason
        for reason in reasons
    ]


def photo_reused_reasons(
    *, listing: Listing, image: DecodedImage | None = None, vector: VectorLike | None = None,
    photos: Sequence[tuple[DecodedImage, VectorLike]] | None = None, model: str | None = None,
    layouts: Mapping[str, VectorLike] | None = None,
) -> list[dict[str, Any]]:
    """The ``photo_reused`` reasons of ``listing``: one per photo that an
    earlier listing (``selectors.listings_before``) shows too (or a
    near-identical copy), naming the most similar such listing. ``photos``
    is ``[(decoded image, embedding), ...]``, or one photo given as ``image``
    and ``vector``; ``layouts`` ({sha256: layout}) are the photos' layouts
    when the caller computed them already."""
    model = model or model_id()
    # Without ``photos`` the caller gives the one photo as ``image`` and ``vector``.
    photos = photos if photos is not None else [(cast(DecodedImage, image), cast(VectorLike, vector))]
    # Only earlier listings: the first to show a photo owns it, however often it is checked again.
    others = selectors.listings_before(listing=listing)
    reasons = []
    layouts = layouts or {}
    for position, (photo, photo_vector) in enumerate(photos):
        layout = layouts[photo.sha256] if photo.sha256 in layouts else layout_signature(photo.image)
        duplicates = near_duplicates(
            sha256=photo.sha256, vector=photo_vector, layout=layout, model=model,
            within=selectors.catalogue_photo_hashes(listings=others),
        )
        if not duplicates:
            continue
        showing = selectors.listings_showing_photos(hashes=[duplicate.sha256 for duplicate in duplicates], listings=others)
        for duplicate in duplicates:  # most similar first
            matches = showing.get(duplicate.sha256)
            if matches:
                reason = _reason(listing=listing, other=matches[0], duplicate=duplicate, also=len(matches) - 1)
                if len(photos) > 1:
                    reason["photo"] = position
                reasons.append(reason)
                break
    return reasons


def _reason(*, listing: Listing, other: Listing, duplicate: NearDuplicate, also: int) -> dict[str, Any]:
    seller_differs = None
    if listing.seller_id is not None and other.seller_id is not None:
        seller_differs = listing.seller_id != other.seller_id
    reason: dict[str, Any] = {
        "code": PHOTO_REUSED,
        "field": "photos",
        "listing_id": other.pk,
        "similarity": duplicate.similarity,
        "layout_similarity": duplicate.layout_similarity,
        "seller_differs": seller_differs,
        "titles_conflict": titles_conflict_check(first=listing.title, second=other.title),
        "sha256": duplicate.sha256,
    }
    reason["message"] = _reused_sentence(reason) + (f" {also} more listing(s) show it too." if also else "")
    return reason


def titles_conflict_check(*, first: str, second: str) -> bool | None:
    """True when two titles say different things: the cosine of their CLIP
    text embeddings is below ``LISTINGS["TITLE_CONFLICT_SIMILARITY"]``;
    None (unknown) when either listing has no title."""
    if not first.strip() or not second.strip():
        return None
    if first.strip().casefold() == second.strip().casefold():
        return False
    engine = get_engine()
    embeddings, _ = run_inference(lambda: engine.encode_texts([first, second]))
    return bool(float(np.dot(embeddings[0], embeddings[1])) < float(listings_settings.TITLE_CONFLICT_SIMILARITY))


# Search


@dataclass(frozen=True)
class SearchHit:
    listing: Listing
    similarity: float


def listings_search(
    *, text: str | None = None, image: DecodedImage | None = None, k: int, statuses: Collection[str] | None = None,
    category: str | None = None,
) -> list[SearchHit]:
    """The ``k`` listings whose photos are nearest to ``text``, to the decoded
    photo ``image``, or to both (their embeddings' normalised sum), most
    similar first, optionally of some statuses and a category."""
    model = model_id()
    engine = get_engine()
    parts = []
    if image is not None:
        parts.append(image_embeddings_compute(images=[image], model=model, engine=engine, store=False)[0])
    if text is not None:
        vectors, _ = run_inference(lambda: engine.encode_texts([text]))
        parts.append(vectors[0])
    vector = np.sum(parts, axis=0)
    vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    listings = Listing.objects.all()
    if statuses:
        listings = listings.filter(status__in=statuses)
    if category:
        listings = listings.filter(category=category)
    neighbours = image_neighbours(
        vector=vector, model=model, k=k, within=selectors.catalogue_photo_hashes(listings=listings)
    )
    showing = selectors.listings_showing_photos(hashes=[n.sha256 for n in neighbours], listings=listings)
    hits = [
        SearchHit(listing, round(neighbour.similarity, 4))
        for neighbour in neighbours for listing in showing.get(neighbour.sha256, [])
    ]
    return hits[:k]
