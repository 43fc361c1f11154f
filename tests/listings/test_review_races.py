"""Claims and decisions under real concurrency, every decision path through the one claim check,
and ids from URLs and forms that name no listing (round-3 attack findings 1 and 2)."""

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from listings import review
from listings.errors import ReviewConflict
from listings.models import Listing, ModerationDecision
from tests.support.listings import MISMATCHING_TEXT
from tests.support.users import moderators_group

Status = Listing.Status
NEXT = "admin:listings_listing_review_next"
DECIDE = "admin:listings_listing_review_decide"


def moderator(username):
    user = get_user_model().objects.create_user(username, password="moderator-password-1", is_staff=True)
    user.groups.add(moderators_group())
    return user


def logged_in(user):
    browser = Client()
    browser.force_login(user)
    return browser


def queue(make_listing, count):
    now = timezone.now()
    listings = []
    for index in range(count):
        listing = make_listing(description=MISMATCHING_TEXT, status=Status.NEEDS_REVIEW)
        Listing.objects.filter(pk=listing.pk).update(created_at=now - timedelta(minutes=count - index))
        listings.append(listing)
    return listings


def race(calls):
    """Run ``calls`` at the same moment, one thread each, each on its own database connection;
    a writer the database turns away ("locked") tries again, as the screen does after a 503."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            for _ in range(500):
                try:
                    results[index] = call()
                    return
                except OperationalError:
                    time.sleep(0.01)
            results[index] = OperationalError("still locked")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_moderators_racing_for_the_next_listing_never_hold_the_same_one(make_listing):
    listings = queue(make_listing, 24)
    moderators = [moderator(f"racer{index}") for index in range(4)]
    held = {user.pk: [] for user in moderators}
    for _ in range(5):
        claimed = race([lambda user=user: review.review_claim_next(moderator=user) for user in moderators])
        for user, listing in zip(moderators, claimed):
            assert isinstance(listing, Listing), listing
            held[user.pk].append(listing.pk)
            review.decision_record(listing=listing, moderator=user, to_status=Status.APPROVED)
    every = [pk for pks in held.values() for pk in pks]
    print(f"\n4 moderators x 5 racing claims ({connection.vendor}): {len(every)} claims, {len(set(every))} distinct")
    assert len(every) == len(set(every)) == 20
    assert ModerationDecision.objects.count() == 20 and len(listings) == 24


@pytest.mark.django_db(transaction=True)
def test_one_moderators_two_sessions_asking_at_once_hold_one_listing(make_listing):
    queue(make_listing, 12)
    user = moderator("twosessions")
    for _ in range(5):
        first, second = race([lambda: review.review_claim_next(moderator=user)] * 2)
        assert first.pk == second.pk
        assert Listing.objects.filter(claimed_by=user, claimed_until__gt=timezone.now()).count() == 1
        review.decision_record(listing=first, moderator=user, to_status=Status.APPROVED)


@pytest.mark.django_db(transaction=True)
def test_the_review_screen_racing_the_change_page_records_one_decision(make_listing):
    listings = queue(make_listing, 8)
    user = moderator("both")
    screen, change_page = logged_in(user), logged_in(user)
    for listing in listings:
        claimed = review.review_claim_next(moderator=user)
        assert claimed.pk == listing.pk
        answers = race([
            lambda: screen.post(reverse(DECIDE, args=[listing.pk]), {"decision": "approve"}).status_code,
            lambda: change_page.post(reverse(DECIDE, args=[listing.pk]), {
                "decision": "reject", "reason_code": "wrong_photo", "next": "change", "status": Status.NEEDS_REVIEW,
            }).status_code,
        ])
        assert ModerationDecision.objects.filter(listing=listing).count() == 1, answers
    print(f"\nreview screen vs change page ({connection.vendor}): {len(listings)} rounds, one decision each")


def test_a_changelist_action_leaves_a_listing_someone_else_holds(db, make_listing):
    listings = queue(make_listing, 2)
    holder, other = moderator("holder"), moderator("other")
    held = review.review_claim_next(moderator=holder)
    response = logged_in(other).post(reverse("admin:listings_listing_changelist"), {
        "action": "approve_selected", "_selected_action": [listing.pk for listing in listings],
    }, follow=True)
    assert Listing.objects.get(pk=held.pk).status == Status.NEEDS_REVIEW
    assert Listing.objects.get(pk=listings[1].pk).status == Status.APPROVED
    assert "Approved 1 listing(s); 1 left as they were (1 held by another moderator)." in response.content.decode()
    # The review queue's list offers the same actions, through the same check.
    logged_in(other).post(reverse("admin:listings_reviewqueueitem_changelist"), {
        "action": "reject_selected", "_selected_action": [held.pk], "post": "yes", "reason_code": "other",
    })
    assert Listing.objects.get(pk=held.pk).status == Status.NEEDS_REVIEW
    assert not ModerationDecision.objects.filter(listing=held).exists()


def test_a_change_page_showing_an_older_status_is_refused(db, make_listing):
    listing = queue(make_listing, 1)[0]
    first, second = moderator("first"), moderator("second")
    review.review_decide(listing_id=listing.pk, moderator=first, decision="approve", require_claim=False)
    with pytest.raises(ReviewConflict, match="decided meanwhile"):
        review.review_decide(listing_id=listing.pk, moderator=second, decision="reject", reason_code="other",
                             require_claim=False, expected_status=Status.NEEDS_REVIEW)
    assert ModerationDecision.objects.filter(listing=listing).count() == 1


def test_undo_after_someone_elses_newer_decision_is_refused_even_when_the_status_is_back(db, make_listing):
    listing = queue(make_listing, 1)[0]
    first, second = moderator("first"), moderator("second")
    review.review_claim_next(moderator=first)
    review.review_decide(listing_id=listing.pk, moderator=first, decision="approve")
    review.review_decide(listing_id=listing.pk, moderator=second, decision="reject", reason_code="other",
                         require_claim=False)
    review.review_decide(listing_id=listing.pk, moderator=second, decision="approve", require_claim=False)
    assert Listing.objects.get(pk=listing.pk).status == Status.APPROVED  # as the first moderator left it

    with pytest.raises(ReviewConflict, match="changed after your decision"):
        review.review_undo(moderator=first)
    assert Listing.objects.get(pk=listing.pk).status == Status.APPROVED
    assert not ModerationDecision.objects.filter(undone_at__isnull=False).exists()


def test_a_get_claims_nothing(db, make_listing):
    queue(make_listing, 2)
    user = moderator("linked")
    browser = logged_in(user)
    for name in ("admin:listings_listing_review", NEXT):
        assert browser.get(reverse(name)).status_code == 200
    assert not Listing.objects.filter(claimed_by=user).exists()


@pytest.mark.parametrize("value", ["²", "9" * 40, "-1", "0", "1e3", " 1", "١"])
def test_odd_ids_from_forms_and_urls_answer_4xx_never_500(db, make_listing, value):
    listing = queue(make_listing, 1)[0]
    user = moderator("odd")
    user.is_superuser = True
    user.save()
    browser = logged_in(user)
    skip = browser.post(reverse(NEXT), {"skip": value})
    assert skip.status_code == 400 and skip.json()["error"]["code"] == "invalid_review"
    back = browser.post(reverse(NEXT), {"back": "1", "current": value})
    assert back.status_code == 200
    assert browser.get(f"/admin/listings/listing/{value}/image/").status_code in (302, 404)
    if value.isascii() and value.isdigit():
        assert browser.post(reverse(DECIDE, args=[int(value)]), {"decision": "approve"}).status_code == 404
        photo = reverse("admin:listings_listing_review_photo", args=[int(value), 0])
        assert browser.get(photo).status_code == 404
    assert Listing.objects.get(pk=listing.pk).status == Status.NEEDS_REVIEW


@pytest.mark.django_db
def test_a_claim_taken_between_the_choice_and_the_update_is_left_to_its_holder(make_listing, monkeypatch):
    """The interleaving a race produces, made deterministic (SQLite serialises writers, so the
    threaded races above cannot reach it there): after the claimer chose its candidate, another
    moderator claims it; the claimer's conditional UPDATE must take nothing from them and move on."""
    first, second = queue(make_listing, 2)
    claimer, rival = moderator("claimer"), moderator("rival")
    original_update = type(Listing.objects.all()).update
    interleaved = []

    def update(queryset, **values):
        if values.get("claimed_by") == claimer and not interleaved:
            interleaved.append(True)
            original_update(
                Listing.objects.filter(pk=first.pk), claimed_by=rival,
                claimed_until=timezone.now() + timedelta(minutes=10),
            )
        return original_update(queryset, **values)

    monkeypatch.setattr(type(Listing.objects.all()), "update", update)
    claimed = review.review_claim_next(moderator=claimer)

    assert interleaved, "the claim no longer goes through a conditional UPDATE"
    assert claimed.pk == second.pk
    assert Listing.objects.get(pk=first.pk).claimed_by == rival
    assert Listing.objects.get(pk=second.pk).claimed_by == claimer
