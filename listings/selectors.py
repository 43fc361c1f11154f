"""Reads of listings data for other parts of the project."""

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Q

from listings.models import UNDO_REASON_CODE, Listing, ListingPhoto, ModerationDecision

WRONG_CATEGORY = "wrong_category"


@dataclass(frozen=True)
class ModerationLabel:
    """One calibration label: the weaker text score, the moderator's verdict,
    the listing's category then, and whether the machine had approved it
    (random review sample) rather than flagged it."""

    score: float
    is_match: bool
    category: str
    sampled: bool
    listing_id: int = 0
    reason_code: str = ""


# Photos. A listing's photo is ``Listing.image`` (hash ``image_sha256``);
# these two functions are the only places that say so, for the similarity
# features (photo_reused, /clip/search, clip_duplicates).


def catalogue_photo_hashes(*, listings=None):
    """The photo hashes of ``listings`` (a queryset; default: the whole
    catalogue), primary and other photos, as a subquery for
    ``clipcheck.vectors.image_neighbours(within=...)``."""
    listings = Listing.objects.all() if listings is None else listings
    primary = listings.order_by().values("image_sha256")
    others = ListingPhoto.objects.filter(listing__in=listings.order_by().values("pk")).order_by().values("image_sha256")
    return primary.union(others)


def listings_before(*, listing, listings=None):
    """The ``listings`` (default all) that came before ``listing``: created
    earlier, or at the same moment with a smaller id (a total order however
    coarse the clock). An unsaved listing comes after every stored one."""
    listings = Listing.objects.all() if listings is None else listings
    if listing.pk is None:
        return listings
    return listings.filter(
        Q(created_at__lt=listing.created_at) | Q(created_at=listing.created_at, pk__lt=listing.pk)
    )


def listings_showing_photos(*, hashes, listings=None, exclude_listing_id=None):
    """``{sha256: [Listing, ...]}``: the listings (of ``listings``, default all)
    with a photo (primary or other) of one of ``hashes``, oldest first;
    ``exclude_listing_id`` left out."""
    hashes = set(hashes)
    listings = Listing.objects.all() if listings is None else listings
    found = (
        listings.filter(Q(image_sha256__in=hashes) | Q(photos__image_sha256__in=hashes))
        .distinct().order_by("created_at", "id").prefetch_related("photos")
    )
    if exclude_listing_id is not None:
        found = found.exclude(pk=exclude_listing_id)
    showing = defaultdict(list)
    for listing in found:
        shown = {listing.image_sha256, *(photo.image_sha256 for photo in listing.photos.all())}
        for sha256 in sorted(shown & hashes):
            showing[sha256].append(listing)
    return dict(showing)


def moderation_labelled_scores(*, model):
    """``moderation_labels`` as ``(score, is_match)`` pairs."""
    return [(label.score, label.is_match) for label in moderation_labels(model=model)]


def moderation_labels(*, model):
    """Moderators' decisions as calibration pairs ``(score, is_match)`` for ``model``.

    One pair per listing, from its latest approve or reject decision whose
    check was made with ``model`` (scores of another model are on another
    scale). The score is the weaker of the title and description scores the
    moderator saw: a listing is flagged when either text falls below the
    threshold, which is when the weaker one does; approved = match,
    rejected = mismatch. Undone decisions (and the undos) are no labels.
    """
    decisions = (
        _live_decisions()
        .filter(
            to_status__in=[Listing.Status.APPROVED, Listing.Status.REJECTED],
            model=model,
            title_score__isnull=False,
            description_score__isnull=False,
        )
        .order_by("listing_id", "-decided_at", "-id")
        .values_list(
            "listing_id", "to_status", "title_score", "description_score", "category", "sampled", "reason_code",
        )
    )
    labels, seen = [], set()
    for listing_id, to_status, title_score, description_score, category, sampled, reason_code in decisions.iterator(
        chunk_size=2000
    ):
        if listing_id in seen:
            continue
        seen.add(listing_id)
        labels.append(ModerationLabel(
            score=min(title_score, description_score), is_match=to_status == Listing.Status.APPROVED,
            category=category, sampled=sampled, listing_id=listing_id, reason_code=reason_code,
        ))
    return labels


def _live_decisions():
    return ModerationDecision.objects.filter(undone_at__isnull=True).exclude(reason_code=UNDO_REASON_CODE)


def latest_decisions():
    """``{listing id: (to_status, reason_code, sampled)}`` of each listing's latest live approval or rejection."""
    latest = {}
    decisions = (
        _live_decisions()
        .filter(to_status__in=[Listing.Status.APPROVED, Listing.Status.REJECTED])
        .order_by("listing_id", "-decided_at", "-id")
        .values_list("listing_id", "to_status", "reason_code", "sampled")
    )
    for listing_id, to_status, reason_code, sampled in decisions.iterator(chunk_size=2000):
        latest.setdefault(listing_id, (to_status, reason_code, sampled))
    return latest


def wrong_category_listing_ids():
    """Listings whose latest live decision rejected them for a wrong category."""
    return {listing_id for listing_id, (_, reason_code, _) in latest_decisions().items() if reason_code == WRONG_CATEGORY}


def catalogue_listings():
    """Listings with a category, by id: the classify calibration's examples."""
    return Listing.objects.exclude(category="").order_by("pk")


def listings_with_reason(*, listings, code):
    """The ``listings`` whose latest check gave a reason with ``code``."""
    from django.db import connections

    if connections[listings.db].vendor == "postgresql":
        return listings.filter(reasons__contains=[{"code": code}])  # jsonb containment
    # Elsewhere the JSON is text: the quoted code, as it can only appear as a value.
    return listings.filter(reasons__icontains=f'"{code}"')


def listing_similar(*, listing, k=5):
    """The ``k`` listings whose photos look most like ``listing``'s, most similar
    first: ``[(Listing, similarity)]`` (the admin's "similar listings" panel)."""
    from clipcheck.selectors import image_embeddings_get
    from clipcheck.services.thresholds import model_id
    from clipcheck.vectors import image_neighbours

    model = model_id()
    vector = image_embeddings_get(hashes=[listing.image_sha256], model=model).get(listing.image_sha256)
    if vector is None:
        return []
    others = Listing.objects.exclude(pk=listing.pk)
    neighbours = image_neighbours(vector=vector, model=model, k=k, within=catalogue_photo_hashes(listings=others))
    showing = listings_showing_photos(hashes=[n.sha256 for n in neighbours], listings=others)
    similar = [(other, neighbour.similarity) for neighbour in neighbours for other in showing.get(neighbour.sha256, [])]
    return similar[:k]
