"""The catalogue's checks per category over a window, for drift (``clip_drift``, ``clip_adapt``'s reference).

A decision **overturns** the machine when a moderator approves a listing the
machine flagged, or rejects one the machine approved and the random review
sample sent to people.
"""

from collections import defaultdict

from django.utils import timezone

from clipcheck import selectors as clip_selectors
from clipcheck.drift import CategoryWindow
from clipcheck.services.thresholds import model_id
from listings.models import Listing, ModerationDecision

ROWS_PER_FETCH = 2000


def decision_overturns(*, from_status, to_status, sampled):
    flagged_approved = from_status == Listing.Status.NEEDS_REVIEW and to_status == Listing.Status.APPROVED
    return flagged_approved or (sampled and to_status == Listing.Status.REJECTED)


def category_windows(*, model, since=None):
    """``{category: CategoryWindow}`` of the listings checked with ``model`` (since ``since``) and the
    moderators' decisions (since ``since``)."""
    windows = defaultdict(CategoryWindow)
    listings = Listing.objects.exclude(category="").filter(checked_model=model)
    decisions = ModerationDecision.objects.filter(
        undone_at__isnull=True, to_status__in=[Listing.Status.APPROVED, Listing.Status.REJECTED]
    )
    if since is not None:
        listings, decisions = listings.filter(checked_at__gte=since), decisions.filter(decided_at__gte=since)
    hashes = _scores_add(windows, listings)
    _decisions_add(windows, decisions)
    _embeddings_add(windows, hashes, model=model)
    return dict(windows)


def _scores_add(windows, listings):
    """Each listing's weaker text score (it decides the flag) into its category; ``{sha256: [category, ...]}``."""
    hashes = {}
    rows = listings.values_list("category", "title_score", "description_score", "image_sha256")
    for category, title_score, description_score, sha256 in rows.iterator(chunk_size=ROWS_PER_FETCH):
        scores = [score for score in (title_score, description_score) if score is not None]
        if scores:
            windows[category].scores.append(min(scores))
        if sha256:
            hashes.setdefault(sha256, []).append(category)
    return hashes


def _decisions_add(windows, decisions):
    rows = decisions.values_list("category", "from_status", "to_status", "sampled")
    for category, from_status, to_status, sampled in rows.iterator(chunk_size=ROWS_PER_FETCH):
        windows[category].decisions += 1
        windows[category].overturns += decision_overturns(from_status=from_status, to_status=to_status, sampled=sampled)


def _embeddings_add(windows, hashes, *, model):
    for sha256, vector in clip_selectors.image_embeddings_get(hashes=hashes, model=model).items():
        for category in hashes[sha256]:
            windows[category].add_embedding(vector)


def drift_reference():
    """What an adaptation stores when it is promoted: every check of the current model so far, per category."""
    return {
        "until": timezone.now().isoformat(),
        "categories": {category: window.as_reference() for category, window in category_windows(model=model_id()).items()},
    }
