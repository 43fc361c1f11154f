"""Listing checks, status rules, saves and moderation decisions."""

import dataclasses

import pytest

from clipcheck.models import Analysis
from clipcheck.selectors import analyses_for_subject
from listings import services
from listings.errors import ListingImageUnavailable
from listings.models import Listing, ListingPhoto, ModerationDecision
from tests.support.images import image_bytes
from tests.support.listings import MATCHING_TEXT, MISMATCHING_TEXT

pytestmark = pytest.mark.django_db

Status = Listing.Status


@pytest.mark.parametrize(
    ("status", "moderated", "content_changed", "is_match", "expected"),
    [
        (Status.PENDING, False, False, True, Status.APPROVED),
        (Status.PENDING, False, False, False, Status.NEEDS_REVIEW),
        (Status.APPROVED, False, True, False, Status.NEEDS_REVIEW),  # auto-approved, then edited to a mismatch
        (Status.NEEDS_REVIEW, False, True, True, Status.APPROVED),  # auto-flagged, then fixed by the seller
        (Status.APPROVED, True, False, False, Status.APPROVED),  # a moderator's approval stands
        (Status.REJECTED, True, False, True, Status.REJECTED),  # a moderator's rejection stands
        (Status.NEEDS_REVIEW, True, False, True, Status.NEEDS_REVIEW),  # flagged by a moderator
        (Status.REJECTED, True, True, True, Status.NEEDS_REVIEW),  # edited after rejection: a person looks again
        (Status.APPROVED, True, True, True, Status.NEEDS_REVIEW),
    ],
)
def test_status_after_check(status, moderated, content_changed, is_match, expected):
    assert services.status_after_check(
        status=status, moderated=moderated, content_changed=content_changed, is_match=is_match
    ) == expected


def test_a_check_reads_the_image_through_storage_and_stores_both_analyses(make_listing, everything_matches):
    listing = make_listing(title="a red shoe", description="leather, size 42")

    outcome = services.listing_check(listing=listing, source=Analysis.Source.ADMIN)

    assert (outcome.from_status, outcome.to_status, listing.status) == ("pending", "approved", "approved")
    analyses = analyses_for_subject(subject=listing).order_by("id")
    assert [analysis.text for analysis in analyses] == ["a red shoe", "leather, size 42"]
    assert all(analysis.image_sha256 == listing.image_sha256 and analysis.source == "admin" for analysis in analyses)
    assert (listing.title_score, listing.description_score) == tuple(a.similarity_score for a in analyses)
    assert listing.clip_verdict == "match" and listing.match_quality
    assert listing.checked_at is not None
    assert listing.checked_image_sha256 == listing.image_sha256
    assert listing.checked_texts_sha256 == listing.texts_sha256
    assert listing.checked_model == analyses[0].model
    assert not listing.needs_check(model=analyses[0].model)


@pytest.mark.parametrize(("title", "description"), [
    (MATCHING_TEXT, MISMATCHING_TEXT), (MISMATCHING_TEXT, MATCHING_TEXT),
])
def test_either_text_mismatching_sends_the_listing_to_review(make_listing, split_threshold, title, description):
    listing = make_listing(title=title, description=description)

    services.listing_check(listing=listing)

    assert listing.status == Status.NEEDS_REVIEW and listing.clip_verdict == "mismatch"


def test_both_texts_matching_approve_the_listing(make_listing, split_threshold):
    listing = make_listing(title=MATCHING_TEXT, description=MATCHING_TEXT)

    services.listing_check(listing=listing)

    assert listing.status == Status.APPROVED


def test_a_recheck_keeps_a_moderators_decision_on_unchanged_content(make_listing, moderator, settings):
    from tests.support.clip_settings import set_clip_settings

    listing = make_listing()
    set_clip_settings(settings, THRESHOLD=0.0)
    services.listing_check(listing=listing)
    services.listings_decide(
        listings=[listing], moderator=moderator, to_status=Status.REJECTED, note="counterfeit"
    )

    services.listing_check(listing=listing)  # a new check that would approve it

    assert listing.status == Status.REJECTED
    set_clip_settings(settings, THRESHOLD=1.0)
    services.listings_decide(listings=[listing], moderator=moderator, to_status=Status.APPROVED)
    services.listing_check(listing=listing)  # a check that finds a mismatch
    assert listing.status == Status.APPROVED and listing.clip_verdict == "mismatch"


def test_an_edit_after_a_rejection_goes_back_to_review_never_approved(make_listing, moderator, everything_matches):
    listing = make_listing()
    services.listing_check(listing=listing)
    services.listings_decide(listings=[listing], moderator=moderator, to_status=Status.REJECTED)
    listing.refresh_from_db()

    listing.description = "now a matching description"
    check = services.listing_save(listing=listing)
    assert check is not None and listing.status == Status.NEEDS_REVIEW
    services.listing_check(listing=listing)  # the audit comes by later
    assert listing.status == Status.NEEDS_REVIEW


def test_an_unchanged_save_is_not_rechecked(make_listing, everything_matches, encoder_calls):
    listing = make_listing()
    services.listing_check(listing=listing)
    checked_at = listing.checked_at
    calls = (list(encoder_calls.image_calls), list(encoder_calls.text_calls))

    listing.category = "shoes"
    listing.price = 10
    assert services.listing_save(listing=listing) is None

    listing.refresh_from_db()
    assert listing.checked_at == checked_at
    assert (encoder_calls.image_calls, encoder_calls.text_calls) == calls


def test_a_changed_text_or_image_is_rechecked(make_listing, everything_matches):
    from django.core.files.base import ContentFile

    from clipcheck.images import decode_image

    listing = make_listing()
    services.listing_check(listing=listing)
    listing.title = "a different title"
    assert services.listing_save(listing=listing) is not None
    assert listing.checked_texts_sha256 == listing.texts_sha256

    new_image = image_bytes(color=(0, 0, 250))
    listing.image.save("new.png", ContentFile(new_image), save=False)
    check = services.listing_save(listing=listing, image_sha256=decode_image(new_image).sha256)
    assert check is not None
    assert listing.checked_image_sha256 == decode_image(new_image).sha256
    assert analyses_for_subject(subject=listing).count() == 6


def test_a_batch_check_encodes_all_images_and_all_texts_in_one_call_each(make_listing, everything_matches, encoder_calls):
    listings = [
        make_listing(title=f"product {n}", description=f"description {n}", color=(n * 40, 10, 10)) for n in range(3)
    ]

    outcomes = services.listings_check(listings=listings)

    assert encoder_calls.image_calls == [3]
    assert encoder_calls.text_calls == [6]
    assert [outcome.to_status for outcome in outcomes] == ["approved"] * 3
    assert Analysis.objects.filter(source="audit").count() == 6


def test_an_unreadable_image_fails_only_its_listing(make_listing, everything_matches):
    broken, fine = make_listing(), make_listing(color=(1, 2, 3))
    broken.image.storage.delete(broken.image.name)

    outcomes = services.listings_check(listings=[broken, fine])

    assert outcomes[0].error.code == "image_unavailable"
    assert outcomes[1].error is None and outcomes[1].to_status == Status.APPROVED
    broken.refresh_from_db()
    assert broken.status == Status.PENDING and broken.checked_at is None
    with pytest.raises(Exception) as raised:
        services.listing_check(listing=broken)
    assert raised.value.code == "image_unavailable"


def test_a_check_does_not_overwrite_a_decision_made_while_the_model_ran(
    make_listing, moderator, everything_matches, monkeypatch
):
    from clipcheck.services import analyses as clip_analyses

    listing = make_listing()
    services.listing_check(listing=listing)
    compute = clip_analyses.analyses_compute

    def decide_meanwhile(**kwargs):
        analyses = compute(**kwargs)
        services.listings_decide(listings=[listing], moderator=moderator, to_status=Status.REJECTED)
        return analyses

    monkeypatch.setattr(clip_analyses, "analyses_compute", decide_meanwhile)
    stale = Listing.objects.get(pk=listing.pk)
    services.listings_check(listings=[stale])

    listing.refresh_from_db()
    assert listing.status == Status.REJECTED


def test_every_decision_is_recorded_for_calibration(make_listing, moderator, split_threshold):
    listing = make_listing(description=MISMATCHING_TEXT)
    services.listing_check(listing=listing)

    approve = dict(listings=[listing], moderator=moderator, to_status=Status.APPROVED)
    assert services.listings_decide(**approve, note="it is a bag") == 1
    assert services.listings_decide(**approve) == 0  # already approved
    services.listings_decide(listings=[listing], moderator=moderator, to_status=Status.REJECTED, note="no")

    approval, rejection = ModerationDecision.objects.order_by("id")
    assert (approval.from_status, approval.to_status, approval.label) == ("needs_review", "approved", "match")
    assert (rejection.from_status, rejection.to_status, rejection.label) == ("approved", "rejected", "mismatch")
    assert approval.moderator == moderator and approval.note == "it is a bag"
    assert (approval.title_score, approval.description_score) == (listing.title_score, listing.description_score)
    assert approval.threshold == split_threshold and approval.model == listing.checked_model
    listing.refresh_from_db()
    assert (listing.moderated_by, listing.moderation_note, listing.status) == (moderator, "no", "rejected")


def test_flagging_sends_only_mismatches_to_review(make_listing, moderator, split_threshold):
    matching = make_listing()
    mismatching = make_listing(description=MISMATCHING_TEXT)
    services.listings_check(listings=[matching, mismatching])
    services.listings_decide(listings=[mismatching], moderator=moderator, to_status=Status.APPROVED)
    mismatching.refresh_from_db()
    matching.refresh_from_db()

    flagged = services.listings_flag_mismatches(listings=[matching, mismatching], moderator=moderator)

    assert flagged == 1
    assert Listing.objects.get(pk=mismatching.pk).status == Status.NEEDS_REVIEW
    assert Listing.objects.get(pk=matching.pk).status == Status.APPROVED


def test_each_computed_score_is_counted_by_verdict_and_a_bounded_category(make_listing, split_threshold):
    from prometheus_client import REGISTRY

    def counted(verdict, category):
        return REGISTRY.get_sample_value(
            "clipcheck_similarity_score_count", {"verdict": verdict, "category": category}
        ) or 0.0

    before = {key: counted(*key) for key in (("match", "shoes"), ("mismatch", "other"), ("match", "none"))}
    services.listings_check(listings=[
        make_listing(title=MATCHING_TEXT, description=MATCHING_TEXT, category="shoes"),
        make_listing(title=MISMATCHING_TEXT, description=MISMATCHING_TEXT, category="a category nobody configured"),
        make_listing(title=MATCHING_TEXT, description=MATCHING_TEXT),
    ])

    assert counted("match", "shoes") == before[("match", "shoes")] + 2  # title and description
    assert counted("mismatch", "other") == before[("mismatch", "other")] + 2  # not one of CATEGORIES: "other"
    assert counted("match", "none") == before[("match", "none")] + 2


def test_scoring_takes_each_primary_photo_as_read_decoded_or_with_its_error(make_listing, everything_matches):
    readable, unreadable = make_listing(), make_listing(color=(1, 2, 3))
    missing = ListingImageUnavailable("The image of listing 2 is missing.")
    primary_photos = [services.listing_photo_read(listing=readable), services.PhotoRead(error=missing)]
    assert primary_photos[0].error is None and primary_photos[0].image.sha256 == readable.image_sha256

    checks = services.listings_score(listings=[readable, unreadable], primary_photos=primary_photos,
                                     source=Analysis.Source.AUDIT)

    assert checks[0].is_scored and checks[0].error is None
    assert checks[1].error is missing and not checks[1].is_scored


def test_another_photo_that_cannot_be_read_is_the_checks_error(make_listing, everything_matches):
    listing = make_listing()
    ListingPhoto.objects.create(listing=listing, image="listings/gone.png", image_sha256="0" * 64, position=1)

    second, = services.listings_other_photos(listings=[listing])[listing.pk]
    assert second.image is None and second.error.code == "image_unavailable"
    outcome, = services.listings_check(listings=[listing])
    assert outcome.error.code == "image_unavailable"
    assert outcome.error.message.startswith(f"Photo 2 of listing {listing.pk} ")


def test_a_check_judges_named_texts_not_positions(make_listing, split_threshold):
    listing = make_listing(description=MISMATCHING_TEXT)
    texts = services.ListingTexts.of_listing(listing, photos=[services.listing_image_decode(listing=listing)])
    assert (texts.title, texts.description, texts.category) == (MATCHING_TEXT, MISMATCHING_TEXT, "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        texts.title = "changed"

    outcome = services.listing_check(listing=listing)
    assert not outcome.title_analysis.is_mismatch and outcome.description_analysis.is_mismatch
