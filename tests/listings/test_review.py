"""The review workbench: the Moderators group, claims, decisions, undo, the sample, the screen's views and metrics."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clipcheck.services import thresholds as clip_services
from listings import review, services
from listings.errors import ReviewConflict, ReviewInvalid
from listings.models import Listing, ListingCheckFailure, ModerationDecision, ReviewQueueItem
from listings.selectors import moderation_labels
from tests.support.listings import MISMATCHING_TEXT

pytestmark = pytest.mark.django_db

Status = Listing.Status


def group_moderator(username="mod"):
    """A staff account whose only permissions come from the Moderators group."""
    user = get_user_model().objects.create_user(username, password="moderator-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


def logged_in(user):
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def queued(make_listing):
    """Three listings waiting for review, oldest first, with scores and reasons."""
    now = timezone.now()
    listings = []
    for age in (30, 20, 10):
        listing = make_listing(description=MISMATCHING_TEXT, category="bags", status=Status.NEEDS_REVIEW)
        Listing.objects.filter(pk=listing.pk).update(
            created_at=now - timedelta(minutes=age), title_score=0.31, description_score=0.12,
            checked_model=clip_services.model_id(),
            reasons=[{"code": "passage_mismatch", "field": "description", "message": "This passage does not match.",
                      "score": 0.12, "threshold": 0.25, "passages": 2, "passage": {"index": 1, "start": 4, "end": 8}}],
        )
        listings.append(Listing.objects.get(pk=listing.pk))
    return listings


def test_the_moderators_group_holds_exactly_the_workbench_permissions():
    group = Group.objects.get(name="Moderators")
    assert sorted(f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()) == [
        "listings.moderate_listing", "listings.view_listing", "listings.view_listingcheckfailure",
        "listings.view_moderationdecision",
    ]


def test_a_moderator_in_the_group_gets_no_403_anywhere_in_the_workbench(queued):
    user = group_moderator()
    browser = logged_in(user)
    ListingCheckFailure.objects.create(listing=queued[0], source="audit", code="image_unavailable", message="gone")
    listing = queued[0]
    pages = [
        reverse("admin:index"),
        reverse("admin:app_list", args=["listings"]),
        reverse("admin:listings_listing_changelist"),
        reverse("admin:listings_listing_change", args=[listing.pk]),
        reverse("admin:listings_listing_history", args=[listing.pk]),
        reverse("admin:listings_listing_image", args=[listing.pk]),
        reverse("admin:listings_reviewqueueitem_changelist"),
        reverse("admin:listings_moderationdecision_changelist"),
        reverse("admin:listings_listingcheckfailure_changelist"),
        reverse("admin:listings_listingcheckfailure_change", args=[ListingCheckFailure.objects.get().pk]),
        reverse("admin:listings_listing_review"),
        reverse("admin:listings_listing_review_next"),
    ]
    for url in pages:
        response = browser.get(url)
        assert response.status_code == 200, (url, response.status_code)
    assert not Listing.objects.filter(claimed_by=user).exists()  # no GET claims
    assert browser.post(reverse("admin:listings_listing_review_next")).status_code == 200

    claimed = Listing.objects.get(claimed_by=user)
    decided = browser.post(reverse("admin:listings_listing_review_decide", args=[claimed.pk]), {"decision": "approve"})
    assert decided.status_code == 200
    decision = ModerationDecision.objects.get()
    assert browser.get(reverse("admin:listings_moderationdecision_change", args=[decision.pk])).status_code == 200
    assert browser.post(reverse("admin:listings_listing_review_undo")).status_code == 200
    from_change_page = browser.post(
        reverse("admin:listings_listing_review_decide", args=[queued[2].pk]),
        {"decision": "reject", "reason_code": "wrong_photo", "next": "change"},
    )
    assert from_change_page.status_code == 302
    assert Listing.objects.get(pk=queued[2].pk).status == Status.REJECTED


def test_users_who_do_not_moderate_are_refused_the_review_views(queued):
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    browser = logged_in(viewer)
    assert browser.get(reverse("admin:listings_listing_review")).status_code == 403
    assert browser.post(
        reverse("admin:listings_listing_review_decide", args=[queued[0].pk]), {"decision": "approve"}
    ).status_code == 403
    assert Listing.objects.get(pk=queued[0].pk).status == Status.NEEDS_REVIEW


class TestClaims:
    def test_the_queue_is_served_oldest_first_and_never_twice(self, queued):
        first, second = group_moderator("first"), group_moderator("second")

        assert review.review_claim_next(moderator=first) == queued[0]
        assert review.review_claim_next(moderator=second) == queued[1]
        # Asking again gives each one the listing they hold, not another.
        assert review.review_claim_next(moderator=first) == queued[0]
        assert review.review_claim_next(moderator=second) == queued[1]

    def test_a_claim_expires(self, queued, settings):
        settings.LISTINGS = {"REVIEW_CLAIM_SECONDS": 60}
        first, second = group_moderator("first"), group_moderator("second")
        now = timezone.now()
        assert review.review_claim_next(moderator=first, now=now) == queued[0]

        assert review.review_claim_next(moderator=second, now=now + timedelta(seconds=59)) == queued[1]
        review.review_release(listing_id=queued[1].pk, moderator=second)
        taken_over = review.review_claim_next(moderator=second, now=now + timedelta(seconds=61))
        assert taken_over == queued[0]
        with pytest.raises(ReviewConflict, match="Another moderator holds"):
            review.review_decide(listing_id=queued[0].pk, moderator=first, decision="approve",
                                 now=now + timedelta(seconds=61))

    def test_nobody_decides_a_listing_someone_else_holds(self, queued):
        first, second = group_moderator("first"), group_moderator("second")
        review.review_claim_next(moderator=first)

        with pytest.raises(ReviewConflict, match="Another moderator"):
            review.review_decide(listing_id=queued[0].pk, moderator=second, decision="approve", require_claim=False)
        response = logged_in(second).post(
            reverse("admin:listings_listing_review_decide", args=[queued[0].pk]), {"decision": "approve"}
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "review_conflict"
        assert Listing.objects.get(pk=queued[0].pk).status == Status.NEEDS_REVIEW

    def test_skipping_gives_the_listing_back_and_serves_the_next(self, queued):
        user = group_moderator()
        browser = logged_in(user)
        browser.post(reverse("admin:listings_listing_review_next"))
        assert Listing.objects.get(claimed_by=user) == queued[0]

        assert browser.post(reverse("admin:listings_listing_review_next"), {"skip": "x"}).status_code == 400
        response = browser.post(reverse("admin:listings_listing_review_next"), {"skip": queued[0].pk})

        assert f'data-listing-id="{queued[1].pk}"' in response.content.decode()
        assert Listing.objects.get(claimed_by=user) == queued[1]
        # Skipped for the rest of the session, not for others.
        assert f'data-listing-id="{queued[1].pk}"' in browser.get(reverse("admin:listings_listing_review_next")).content.decode()
        assert review.review_claim_next(moderator=group_moderator("other")) == queued[0]


class TestDecisions:
    def test_a_decision_records_who_what_why_and_the_scores_and_reaches_the_admin_log(self, queued):
        user = group_moderator()
        review.review_claim_next(moderator=user)

        review.review_decide(
            listing_id=queued[0].pk, moderator=user, decision="reject", reason_code="misleading_description",
            note="The bag is a shoe.",
        )

        decision = ModerationDecision.objects.get()
        assert (decision.moderator, decision.from_status, decision.to_status) == (user, "needs_review", "rejected")
        assert (decision.reason_code, decision.note, decision.category) == ("misleading_description", "The bag is a shoe.", "bags")
        assert (decision.title_score, decision.description_score) == (0.31, 0.12)
        assert decision.threshold == clip_services.default_threshold(category="bags")
        assert decision.reasons[0]["code"] == "passage_mismatch" and decision.sampled is False
        listing = Listing.objects.get(pk=queued[0].pk)
        assert (listing.status, listing.moderated_by, listing.claimed_by) == (Status.REJECTED, user, None)
        entry = LogEntry.objects.get(object_id=str(listing.pk))
        assert entry.user == user and "needs_review → rejected (misleading_description)" in entry.change_message
        history = logged_in(user).get(reverse("admin:listings_listing_history", args=[listing.pk]))
        assert "needs_review → rejected (misleading_description): The bag is a shoe." in history.content.decode()

    @pytest.mark.parametrize(("fields", "message"), [
        ({"decision": "reject"}, "needs a reason code"),
        ({"decision": "reject", "reason_code": "rude"}, "needs a reason code"),
        ({"decision": "approve", "reason_code": "rude"}, "Unknown reason code"),
        ({"decision": "delete"}, "Unknown decision"),
    ])
    def test_bad_decisions_get_a_400_and_change_nothing(self, queued, fields, message):
        user = group_moderator()
        review.review_claim_next(moderator=user)

        response = logged_in(user).post(reverse("admin:listings_listing_review_decide", args=[queued[0].pk]), fields)

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_review" and message in response.json()["error"]["message"]
        assert not ModerationDecision.objects.exists()

    def test_an_unknown_listing_is_a_404_and_a_get_a_405(self, queued):
        browser = logged_in(group_moderator())
        assert browser.post(reverse("admin:listings_listing_review_decide", args=[999999]), {"decision": "approve"}).status_code == 404
        assert browser.get(reverse("admin:listings_listing_review_decide", args=[queued[0].pk])).status_code == 405
        assert browser.get(reverse("admin:listings_listing_review_undo")).status_code == 405

    def test_reason_codes_are_configurable(self, queued, settings):
        settings.LISTINGS = {"REVIEW_REASON_CODES": ["counterfeit", "other"]}
        user = group_moderator()
        review.review_claim_next(moderator=user)
        with pytest.raises(ReviewInvalid):
            review.review_decide(listing_id=queued[0].pk, moderator=user, decision="reject", reason_code="wrong_photo")
        review.review_decide(listing_id=queued[0].pk, moderator=user, decision="reject", reason_code="counterfeit")
        page = logged_in(user).get(reverse("admin:listings_listing_review")).content.decode()
        assert "<kbd>1</kbd> Counterfeit" in page and "wrong_photo" not in page and "Wrong photo" not in page

    def test_undo_reverts_the_latest_decision_keeps_the_record_and_drops_the_label(self, queued):
        user = group_moderator()
        review.review_claim_next(moderator=user)
        review.review_decide(listing_id=queued[0].pk, moderator=user, decision="approve")

        listing = review.review_undo(moderator=user)

        assert listing == queued[0]
        listing.refresh_from_db()
        assert (listing.status, listing.moderated_at, listing.claimed_by) == (Status.NEEDS_REVIEW, None, user)
        original, undo = ModerationDecision.objects.order_by("id")
        assert original.undone_at is not None and original.label is None
        assert (undo.reason_code, undo.from_status, undo.to_status) == ("undo", "approved", "needs_review")
        assert moderation_labels(model=clip_services.model_id()) == []
        with pytest.raises(ReviewConflict, match="no decision left"):
            review.review_undo(moderator=user)

    def test_the_change_page_offers_approve_and_reject(self, queued):
        user = group_moderator()
        browser = logged_in(user)
        page = browser.get(reverse("admin:listings_listing_change", args=[queued[0].pk])).content.decode()
        assert 'name="decision" value="approve"' in page and 'name="decision" value="reject"' in page

        response = browser.post(
            reverse("admin:listings_listing_review_decide", args=[queued[0].pk]),
            {"decision": "reject", "next": "change"}, follow=True,
        )

        assert "A rejection needs a reason code" in response.content.decode()
        browser.post(reverse("admin:listings_listing_review_decide", args=[queued[0].pk]),
                     {"decision": "approve", "next": "change"})
        assert Listing.objects.get(pk=queued[0].pk).status == Status.APPROVED


class TestReviewScreen:
    def test_it_shows_photo_texts_reasons_scores_against_the_threshold_and_the_passage(self, queued, settings):
        user = group_moderator()
        ModerationDecision.objects.create(listing=queued[0], moderator=user, from_status="pending",
                                          to_status="needs_review", note="earlier flag")

        page = logged_in(user).post(reverse("admin:listings_listing_review_next")).content.decode()

        listing = queued[0]
        assert f'data-listing-id="{listing.pk}"' in page
        assert reverse("admin:listings_listing_image", args=[listing.pk]) in page
        assert MISMATCHING_TEXT == "red shoe" and "red <mark>shoe</mark>" in page
        # The reason in words: its label, field and sentence; evidence labelled, the failing score marked.
        assert "No passage matches the photo" in page and "(Description)" in page
        assert "None of the 2 passages of the description matches the photo; the best scores 0.120" in page
        threshold = clip_services.default_threshold(category="bags")
        assert threshold == 0.25 and '<span class="below">Score: 0.120</span>' in page
        assert "Best passage: passage 2 (characters 4–8)" in page
        assert f"{threshold:.3f}" in page and "earlier flag" in page
        assert "Category <strong>bags</strong>" in page
        assert "passage_mismatch</" not in page and "similarity_score" not in page and "{&#x27;" not in page

    def test_a_reused_photo_is_shown_beside_the_listing_that_already_shows_it(self, queued, make_listing):
        original = make_listing(title="Blue star, original", status=Status.APPROVED)
        Listing.objects.filter(pk=queued[0].pk).update(reasons=[
            {"code": "photo_reused", "field": "photos", "message": "Another listing shows this photo.",
             "listing_id": original.pk, "similarity": 0.991, "seller_differs": True, "titles_conflict": False},
            {"code": "photo_reused", "field": "photos", "message": "A deleted listing.", "listing_id": 987654},
        ])

        page = logged_in(group_moderator()).post(reverse("admin:listings_listing_review_next")).content.decode()

        assert "The same photo on other listings" in page
        assert f'class="review-reused-item" data-listing-id="{original.pk}"' in page
        assert reverse("admin:listings_listing_image", args=[original.pk]) in page
        assert "Blue star, original" in page and "similarity 0.991" in page and "another seller" in page
        assert 'data-listing-id="987654"' not in page

    def test_without_reasons_it_falls_back_to_the_scores(self, queued):
        Listing.objects.filter(pk=queued[0].pk).update(reasons=[], description_score=0.0)
        page = logged_in(group_moderator()).post(reverse("admin:listings_listing_review_next")).content.decode()
        assert "Why it is here" in page and "<code>" not in page
        assert '<span class="below">mismatch</span>' in page

    def test_an_empty_queue_says_so(self, db):
        page = logged_in(group_moderator()).post(reverse("admin:listings_listing_review_next")).content.decode()
        assert "Nothing left to review" in page

    def test_description_segments_highlight_each_span_once(self):
        from listings.admin_review import description_segments

        reasons = [{"field": "description", "start": 2, "end": 5}, {"field": "description", "start": 4, "end": 7},
                   {"field": "title", "start": 0, "end": 1}, {"field": "description", "start": "x", "end": 3},
                   {"field": "description", "start": True, "end": 9}, {"field": "description", "start": -2, "end": 1},
                   "not a reason"]
        assert description_segments("abcdefghij", reasons) == [("ab", False), ("cde", True), ("fg", True), ("hij", False)]


class TestSampling:
    def test_a_share_of_machine_approvals_goes_to_review_marked_as_sampled(self, make_listing, split_threshold,
                                                                           monkeypatch, settings):
        settings.LISTINGS = {"REVIEW_SAMPLE_RATE": 0.5}
        draws = iter([0.1, 0.9, 0.4, 0.6])
        monkeypatch.setattr(review.sample_random, "random", lambda: next(draws))
        listings = [make_listing() for _ in range(4)]

        services.listings_check(listings=listings)

        sampled = [Listing.objects.get(pk=listing.pk).review_sampled for listing in listings]
        assert sampled == [True, False, True, False]
        assert all(Listing.objects.get(pk=listing.pk).status == Status.APPROVED for listing in listings)
        assert set(review.review_queue()) == {listings[0], listings[2]}
        assert set(ReviewQueueItem.objects.values_list("pk", flat=True)) == {listings[0].pk, listings[2].pk}

        user = group_moderator()
        claimed = review.review_claim_next(moderator=user)
        review.review_decide(listing_id=claimed.pk, moderator=user, decision="approve")
        decision = ModerationDecision.objects.get()
        assert decision.sampled and decision.from_status == decision.to_status == Status.APPROVED
        assert [label.sampled for label in moderation_labels(model=clip_services.model_id())] == [True]
        assert list(review.review_queue()) == [listings[2]]

    def test_approving_a_sampled_listing_from_the_changelist_records_the_label(self, make_listing, split_threshold,
                                                                               monkeypatch, settings):
        settings.LISTINGS = {"REVIEW_SAMPLE_RATE": 1.0}
        monkeypatch.setattr(review.sample_random, "random", lambda: 0.0)
        listing = make_listing()
        services.listings_check(listings=[listing])
        user = group_moderator()

        assert services.listings_decide(listings=[listing], moderator=user, to_status=Status.APPROVED) == 1
        assert services.listings_decide(listings=[listing], moderator=user, to_status=Status.APPROVED) == 0
        assert ModerationDecision.objects.get().sampled and not review.review_queue().exists()

    def test_no_sample_at_rate_zero_and_rechecks_do_not_draw_again(self, make_listing, split_threshold, monkeypatch,
                                                                   settings):
        draws = []
        monkeypatch.setattr(review.sample_random, "random", lambda: draws.append(1) or 0.0)
        settings.LISTINGS = {"REVIEW_SAMPLE_RATE": 0.0}
        listing = make_listing()
        services.listings_check(listings=[listing])
        settings.LISTINGS = {"REVIEW_SAMPLE_RATE": 1.0}
        services.listings_check(listings=[Listing.objects.get(pk=listing.pk)], threshold=0.0)
        assert draws == [] and not Listing.objects.get(pk=listing.pk).review_sampled


def test_the_queue_shows_on_the_admin_index_and_on_metrics(queued, django_capture_on_commit_callbacks):
    user = group_moderator()
    index = logged_in(user).get(reverse("admin:index")).content.decode()
    assert re.search(r"<strong>3</strong> listings waiting; the oldest for 30\xa0minutes", index)
    review.review_claim_next(moderator=user)
    with django_capture_on_commit_callbacks(execute=True):
        review.review_decide(listing_id=queued[0].pk, moderator=user, decision="reject", reason_code="duplicate")
    after_first = Client().get("/metrics").content.decode()
    review.review_claim_next(moderator=user)
    with django_capture_on_commit_callbacks(execute=True):  # the machine flagged it; the moderator approves
        review.review_decide(listing_id=queued[1].pk, moderator=user, decision="approve")

    metrics = Client().get("/metrics").content.decode()

    overturns = r'^clipcheck_review_overturns_total\{kind="flag_approved",reason_code="none"\} (\S+)$'
    before = re.search(overturns, after_first, re.M)
    assert float(re.search(overturns, metrics, re.M).group(1)) == (float(before.group(1)) if before else 0.0) + 1
    assert re.search(r"^clipcheck_review_queue_size 1\.0$", metrics, re.M)
    # After the first decision: two waiting, the oldest 20 minutes.
    assert re.search(r"^clipcheck_review_queue_size 2\.0$", after_first, re.M)
    oldest = float(re.search(r"^clipcheck_review_queue_oldest_seconds (\S+)$", after_first, re.M).group(1))
    assert 20 * 60 - 5 < oldest < 20 * 60 + 60
    assert re.search(r'^clipcheck_review_decisions_total\{reason_code="duplicate",to_status="rejected"\} [1-9]', metrics, re.M)


def test_the_queue_page_links_to_the_review_screen(queued):
    page = logged_in(group_moderator()).get(reverse("admin:listings_reviewqueueitem_changelist")).content.decode()
    assert f'href="{reverse("admin:listings_listing_review")}"' in page


def test_the_index_shows_no_queue_to_users_who_do_not_moderate(queued):
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    assert "review-queue-summary" not in logged_in(viewer).get(reverse("admin:index")).content.decode()


def test_moderators_given_the_permissions_the_old_docs_named_can_read_decisions_and_check_failures(queued, moderator):
    ListingCheckFailure.objects.create(listing=queued[0], source="audit", code="image_unavailable", message="gone")
    browser = logged_in(moderator)
    index = browser.get(reverse("admin:index")).content.decode()
    for name in ("moderationdecision", "listingcheckfailure"):
        url = reverse(f"admin:listings_{name}_changelist")
        assert browser.get(url).status_code == 200
        assert f'href="{url}"' in index


def test_the_changelist_reject_action_records_a_reason_code_and_logs_the_decision(queued):
    user = group_moderator()
    browser = logged_in(user)
    changelist = reverse("admin:listings_listing_changelist")
    confirmation = browser.post(changelist, {"action": "reject_selected", "_selected_action": [queued[1].pk]})
    assert '<option value="wrong_photo">Wrong photo</option>' in confirmation.content.decode()

    browser.post(changelist, {"action": "reject_selected", "_selected_action": [queued[1].pk], "post": "yes",
                              "reason_code": "wrong_photo", "note": "not the bag"})

    decision = ModerationDecision.objects.get()
    assert (decision.reason_code, decision.note, decision.to_status) == ("wrong_photo", "not the bag", "rejected")
    assert LogEntry.objects.filter(object_id=str(queued[1].pk), user=user).exists()


def test_passages_named_by_the_verdicts_passage_object_are_highlighted_and_scores_judged_against_their_threshold():
    from listings.admin_review import description_segments, reason_rows

    reason = {"code": "passage_mismatch", "field": "description", "message": "m", "score": 0.6, "threshold": 0.7,
              "passage": {"index": 1, "start": 6, "end": 11}}
    assert description_segments("Good. Wrong.", [reason]) == [("Good. ", False), ("Wrong", True), (".", False)]
    evidence = {pair["key"]: pair["below"] for pair in reason_rows([reason], threshold=0.25)[0]["evidence"]}
    assert evidence["score"] is True and evidence["threshold"] is False


def test_every_photo_of_a_listing_is_served_through_storage(queued, monkeypatch):
    from types import SimpleNamespace

    from listings import admin_review

    listing = queued[0]
    browser = logged_in(group_moderator())
    photo_url = reverse("admin:listings_listing_review_photo", args=[listing.pk, 1])
    assert browser.get(photo_url).status_code == 404  # no photos relation: the image alone
    monkeypatch.setattr(admin_review, "listing_photos", lambda item: [SimpleNamespace(image=item.image)] * 2)

    page = browser.post(reverse("admin:listings_listing_review_next")).content.decode()
    response = browser.get(photo_url)

    assert page.count('class="review-photo"') == 2 and photo_url in page
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response) == listing.image.open("rb").read()
    assert browser.get(reverse("admin:listings_listing_review_photo", args=[listing.pk, 2])).status_code == 404


def test_anonymous_visitors_are_sent_to_the_login_and_change_nothing(queued):
    anonymous = Client()
    for url in (reverse("admin:listings_listing_review"), reverse("admin:listings_listing_review_next")):
        assert anonymous.get(url).status_code == 302
    response = anonymous.post(reverse("admin:listings_listing_review_decide", args=[queued[0].pk]), {"decision": "approve"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not ModerationDecision.objects.exists() and not Listing.objects.filter(claimed_by__isnull=False).exists()


def test_a_conflict_highlights_the_form_the_seller_wrote():
    from listings.admin_review import description_segments

    reason = {"code": "attribute_conflict", "field": "description", "attribute": "colour", "text_says": "rot",
              "photo_shows": "blau", "message": "m"}
    assert description_segments("Ein roter Stern.", [reason]) == [("Ein ", False), ("roter", True), (" Stern.", False)]
