"""Reads of listings data for other parts of the project."""

from listings.models import Listing, ModerationDecision


def moderation_labelled_scores(*, model):
    """Moderators' decisions as calibration pairs ``(score, is_match)`` for ``model``.

    One pair per listing, from its latest approve or reject decision whose
    check was made with ``model`` (scores of another model are on another
    scale). The score is the weaker of the title and description scores the
    moderator saw: a listing is flagged when either text falls below the
    threshold, which is when the weaker one does; approved = match,
    rejected = mismatch.
    """
    decisions = (
        ModerationDecision.objects.filter(
            to_status__in=[Listing.Status.APPROVED, Listing.Status.REJECTED],
            model=model,
            title_score__isnull=False,
            description_score__isnull=False,
        )
        .order_by("listing_id", "-decided_at", "-id")
        .values_list("listing_id", "to_status", "title_score", "description_score")
    )
    pairs, seen = [], set()
    for listing_id, to_status, title_score, description_score in decisions.iterator(chunk_size=2000):
        if listing_id in seen:
            continue
        seen.add(listing_id)
        pairs.append((min(title_score, description_score), to_status == Listing.Status.APPROVED))
    return pairs
