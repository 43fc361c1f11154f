"""Appeals: the seller reads each statement of reasons and contests a rejection once, within the window;
another moderator decides it (never the one it contests), and the outcome reaches the seller."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from listings import review
from listings.appeals import appeal_create, appeal_queue_stats
from listings.errors import ReviewConflict
from listings.models import Appeal, Listing, ModerationDecision
from listings.statement_rules import statement_errors
from tests.support.statements import EVERY_REASON, listing_to_review

pytestmark = pytest.mark.django_db

Status = Listing.Status
APPEAL_TEXT = "The photo shows exactly the blue bag I sell; the light makes it look red."


def staff_moderator(username):
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username, password="moderator-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


@pytest.fixture
def people():
    users = get_user_model().objects
    return {
        "seller": users.create_user("seller"), "other": users.create_user("other-seller"),
        "first": staff_moderator("first-moderator"), "second": staff_moderator("second-moderator"),
    }


def signed_in(user):
    browser = Client()
    browser.force_login(user)
    return browser


def rejected(people, *, reasons=EVERY_REASON[:2], reason_code="misleading_description"):
    """A listing of ``people["seller"]`` the first moderator rejected (machine-flagged)."""
    listing = listing_to_review(seller=people["seller"], reasons=reasons)
    decision = review.decision_record(
        listing=listing, moderator=people["first"], to_status=Status.REJECTED, reason_code=reason_code, note="",
    )
    return Listing.objects.get(pk=listing.pk), decision


def statements_url(listing):
    return reverse("listings:listing-statements", args=[listing.pk])


def appeal_url(listing):
    return reverse("listings:listing-appeal", args=[listing.pk])


def post_appeal(browser, listing, text=APPEAL_TEXT):
    return browser.post(appeal_url(listing), {"text": text}, content_type="application/json")


def test_the_seller_reads_each_statement_and_others_get_404_as_for_a_missing_listing(people):
    listing, decision = rejected(people)
    answer = signed_in(people["seller"]).get(statements_url(listing))
    assert answer.status_code == 200
    body = answer.json()
    assert body["listing"] == listing.pk and body["status"] == "rejected"
    [row] = body["statements"]
    assert statement_errors(row["statement"]) == {}
    assert row["puid"] == row["statement"]["puid"]
    assert row["appeal"] is None and row["appeal_until"] is not None
    assert "It found:" in row["statement"]["decision_facts"]

    assert signed_in(people["first"]).get(statements_url(listing)).status_code == 200  # staff
    stranger = signed_in(people["other"])
    missing = stranger.get(reverse("listings:listing-statements", args=[listing.pk + 1000]))
    theirs_not = stranger.get(statements_url(listing))
    assert theirs_not.status_code == missing.status_code == 404
    assert theirs_not.json() == missing.json() == {"error": {"code": "not_found", "message": "No such listing."}}
    assert stranger.post(appeal_url(listing), {"text": "x"}, content_type="application/json").status_code == 404
    assert Client().get(statements_url(listing)).status_code == 401


def test_an_appeal_is_taken_once_within_the_window_with_a_text_of_bounded_length(people, settings):
    settings.LISTINGS = {"APPEAL_WINDOW_DAYS": 30, "APPEAL_TEXT_MAX_LENGTH": 100}
    seller = signed_in(people["seller"])
    listing, decision = rejected(people)

    empty = post_appeal(seller, listing, "   ")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "appeal_text_empty"
    long = post_appeal(seller, listing, "x" * 101)
    assert long.status_code == 400 and long.json()["error"]["code"] == "appeal_text_too_long"
    assert long.json()["error"]["detail"] == {"max_length": 100, "length": 101}

    ModerationDecision.objects.filter(pk=decision.pk).update(decided_at=timezone.now() - timedelta(days=31))
    late = post_appeal(seller, listing)
    assert late.status_code == 409 and late.json()["error"]["code"] == "appeal_too_late"
    ModerationDecision.objects.filter(pk=decision.pk).update(decided_at=timezone.now() - timedelta(days=29))

    taken = post_appeal(seller, listing)
    assert taken.status_code == 201, taken.json()
    assert taken.json()["appeal"]["outcome"] == "open" and taken.json()["appeal"]["text"] == APPEAL_TEXT
    again = post_appeal(seller, listing, "Once more.")
    assert again.status_code == 409 and again.json()["error"]["code"] == "appeal_exists"
    assert Appeal.objects.count() == 1

    approved = listing_to_review(seller=people["seller"], status=Status.APPROVED)
    nothing = post_appeal(seller, approved)
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "appeal_nothing_to_contest"


def test_an_appeal_is_never_offered_to_nor_decided_by_the_moderator_it_contests(people):
    listing, decision = rejected(people)
    appeal = appeal_create(listing=listing, text=APPEAL_TEXT)
    first, second = people["first"], people["second"]

    assert review.review_claim_next(moderator=first) is None
    with pytest.raises(ReviewConflict) as refused:
        review.review_decide(listing_id=listing.pk, moderator=first, decision="approve", require_claim=False)
    assert refused.value.code == "own_decision_appealed"
    # The conditional UPDATE refuses it too, whichever path calls it.
    with pytest.raises(ReviewConflict):
        review.decision_record(listing=Listing.objects.get(pk=listing.pk), moderator=first,
                               to_status=Status.APPROVED)
    assert Listing.objects.get(pk=listing.pk).status == Status.REJECTED

    claimed = review.review_claim_next(moderator=second)
    assert claimed.pk == listing.pk
    closing = review.review_decide(listing_id=listing.pk, moderator=second, decision="approve")
    appeal.refresh_from_db()
    assert appeal.outcome == Appeal.Outcome.REVERSED and appeal.decided_by == second
    assert appeal.outcome_decision == closing
    assert Listing.objects.get(pk=listing.pk).status == Status.APPROVED


def test_the_outcome_reaches_the_seller_and_an_upheld_appeal_is_no_new_restriction(people):
    from listings.statements import restriction_decisions

    seller = signed_in(people["seller"])
    listing, decision = rejected(people)
    assert post_appeal(seller, listing).status_code == 201
    pending = seller.get(statements_url(listing)).json()["statements"][0]
    assert pending["appeal"]["outcome"] == "open" and pending["appeal_until"] is None
    assert "will review it" in pending["statement"]["decision_facts"]

    review.review_claim_next(moderator=people["second"])
    review.review_decide(listing_id=listing.pk, moderator=people["second"], decision="reject",
                         reason_code="misleading_description")
    [row] = seller.get(statements_url(listing)).json()["statements"]
    assert row["appeal"]["outcome"] == "upheld" and row["appeal"]["decided_at"]
    assert row["statement"]["decision_facts"].endswith("upheld the decision.")
    assert statement_errors(row["statement"]) == {}
    assert list(restriction_decisions().filter(listing=listing)) == [decision]
    # The statement for the Transparency Database is the decision's own, as sent.
    from listings.statements import decision_statement
    assert "contested" not in decision_statement(decision)["decision_facts"]


def test_undoing_the_decision_on_an_appeal_opens_it_again(people):
    listing, _ = rejected(people)
    appeal = appeal_create(listing=listing, text=APPEAL_TEXT)
    review.review_claim_next(moderator=people["second"])
    review.review_decide(listing_id=listing.pk, moderator=people["second"], decision="approve")
    review.review_undo(moderator=people["second"])
    appeal.refresh_from_db()
    assert appeal.outcome == Appeal.Outcome.OPEN and appeal.decided_by is None


def test_the_review_screen_shows_the_sellers_text_and_the_original_reasons(people):
    listing, decision = rejected(people)
    appeal_create(listing=listing, text=APPEAL_TEXT)
    browser = signed_in(people["second"])
    item = browser.post(reverse("admin:listings_listing_review_next")).content.decode()
    assert f'data-listing-id="{listing.pk}"' in item
    assert "Appeal: the seller contests the rejection" in item
    assert APPEAL_TEXT in item
    assert "review-appeal-reasons" in item and "Misleading description" in item
    assert "Nothing left to review" in signed_in(people["first"]).post(
        reverse("admin:listings_listing_review_next")).content.decode()


def test_appeals_have_their_own_count_and_age_on_the_admin_index_and_metrics(people, settings):
    listing, _ = rejected(people)
    appeal = appeal_create(listing=listing, text=APPEAL_TEXT, now=timezone.now() - timedelta(hours=2))
    stats = appeal_queue_stats()
    assert stats.size == 1 and 7190 < stats.oldest_seconds < 7300
    index = signed_in(people["second"]).get(reverse("admin:index")).content.decode()
    assert re.search(r"<strong>1</strong> appeal by sellers waiting; the oldest for 2\xa0hours", index), index
    metrics = Client().get("/metrics").content.decode()
    assert re.search(r"^clipcheck_appeal_queue_size 1\.0$", metrics, re.M)
    oldest = float(re.search(r"^clipcheck_appeal_queue_oldest_seconds (\S+)$", metrics, re.M).group(1))
    assert 7190 < oldest < 7300
    appeal.delete()
    assert appeal_queue_stats().size == 0


@pytest.mark.parametrize("key, value, check_id", [
    ("APPEAL_WINDOW_DAYS", 0, "listings.E019"), ("APPEAL_WINDOW_DAYS", "six months", "listings.E019"),
    ("APPEAL_TEXT_MAX_LENGTH", -1, "listings.E020"),
])
def test_appeal_settings_are_checked(settings, key, value, check_id):
    from listings.checks import check_listings_settings

    settings.LISTINGS = {key: value}
    assert [error.id for error in check_listings_settings()] == [check_id]
