"""Reads of listings data for other parts of the project."""

from dataclasses import dataclass

from listings.models import UNDO_REASON_CODE, Listing, ModerationDecision

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
        .values_list("listing_id", "to_status", "title_score", "description_score", "category", "sampled")
    )
    labels, seen = [], set()
    for listing_id, to_status, title_score, description_score, category, sampled in decisions.iterator(chunk_size=2000):
        if listing_id in seen:
            continue
        seen.add(listing_id)
        labels.append(ModerationLabel(
            score=min(title_score, description_score), is_match=to_status == Listing.Status.APPROVED,
            category=category, sampled=sampled,
        ))
    return labels


def _live_decisions():
    return ModerationDecision.objects.filter(undone_at__isnull=True).exclude(reason_code=UNDO_REASON_CODE)


def wrong_category_listing_ids():
    """Listings whose latest live decision rejected them for a wrong category."""
    latest = {}
    decisions = (
        _live_decisions()
        .filter(to_status__in=[Listing.Status.APPROVED, Listing.Status.REJECTED])
        .order_by("listing_id", "-decided_at", "-id")
        .values_list("listing_id", "reason_code")
    )
    for listing_id, reason_code in decisions.iterator(chunk_size=2000):
        latest.setdefault(listing_id, reason_code)
    return {listing_id for listing_id, reason_code in latest.items() if reason_code == WRONG_CATEGORY}


def catalogue_listings():
    """Listings with a category, by id: the classify calibration's examples."""
    return Listing.objects.exclude(category="").order_by("pk")
