"""Claims on the database's clock: a web server whose clock is minutes off
neither takes another moderator's claim nor holds its own too long
(round-3 attack finding 11)."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from listings import review, services
from listings.errors import ReviewConflict
from listings.models import Listing
from tests.support.listings import MISMATCHING_TEXT
from tests.support.users import moderators_group

pytestmark = pytest.mark.django_db

Status = Listing.Status
# Longer than a claim (REVIEW_CLAIM_SECONDS, 300 s by default).
SKEW = timedelta(seconds=400)


def moderator(username):
    user = get_user_model().objects.create_user(username, is_staff=True)
    user.groups.add(moderators_group())
    return user


@pytest.fixture
def queued(make_listing):
    listings = [make_listing(description=MISMATCHING_TEXT, status=Status.NEEDS_REVIEW) for _ in range(2)]
    now = timezone.now()
    for age, listing in enumerate(reversed(listings), start=1):  # the first is the oldest
        Listing.objects.filter(pk=listing.pk).update(created_at=now - timedelta(minutes=age))
    return listings


@pytest.fixture
def server_clock(monkeypatch):
    """Set this web server's clock ``skew`` away from the true time (the database's)."""
    true_now = timezone.now

    def shift(skew):
        monkeypatch.setattr(timezone, "now", lambda: true_now() + skew)

    return shift


def test_a_server_whose_clock_is_fast_does_not_take_a_listing_someone_holds(queued, server_clock):
    holder, other = moderator("holder"), moderator("other")
    assert review.review_claim_next(moderator=holder).pk == queued[0].pk

    server_clock(SKEW)  # the other moderator's server is 400 s ahead

    assert review.review_claim_next(moderator=other).pk == queued[1].pk
    with pytest.raises(ReviewConflict, match="Another moderator holds"):
        review.review_decide(listing_id=queued[0].pk, moderator=other, decision="approve", require_claim=False)
    assert services.listings_decide(listings=[queued[0]], moderator=other, to_status=Status.APPROVED) == 0
    assert review.review_held_by_others(listings=Listing.objects.all(), moderator=other) == 1
    assert Listing.objects.get(pk=queued[0].pk).claimed_by == holder


def test_a_server_whose_clock_is_slow_holds_a_claim_for_the_claim_time(queued, server_clock, settings):
    settings.LISTINGS = {"REVIEW_CLAIM_SECONDS": 300}
    holder, other = moderator("holder"), moderator("other")
    true_now = timezone.now()
    server_clock(-SKEW)  # the holder's server is 400 s behind

    claimed = review.review_claim_next(moderator=holder)

    assert claimed.pk == queued[0].pk
    until = Listing.objects.get(pk=claimed.pk).claimed_until
    assert abs((until - true_now).total_seconds() - 300) < 30  # not 300 s of a clock 400 s behind
    assert review.review_held(moderator=holder).pk == claimed.pk
    server_clock(timedelta(0))
    assert review.review_claim_next(moderator=other).pk == queued[1].pk
    server_clock(-SKEW)
    decision = review.review_decide(listing_id=claimed.pk, moderator=holder, decision="approve")
    assert decision.to_status == Status.APPROVED
