"""Listings with several photos, their reasons, and where the reasons show."""

import json

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from clipcheck.images import decode_image
from clipcheck.models import Analysis
from listings import services
from listings.models import Listing, ListingPhoto
from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes
from tests.support.listings import MATCHING_TEXT, RED

pytestmark = pytest.mark.django_db

BLUE, GREEN = (20, 40, 210), (30, 170, 40)


def upload(client, photos, **fields):
    files = [SimpleUploadedFile(f"photo {i}.png", data, content_type="image/png") for i, data in enumerate(photos)]
    return client.post("/upload", {"file": files, "description": MATCHING_TEXT, **fields})


def test_every_photo_is_stored_under_a_generated_name_in_order(seller_client, everything_matches):
    photos = [image_bytes(color=RED), image_bytes(color=BLUE), image_bytes(color=GREEN)]

    response = upload(seller_client, photos)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["photos"] == 3 and body["title_check"] is None  # no title was sent
    listing = Listing.objects.get(pk=body["listing_id"])
    stored = list(listing.photos.order_by("position"))
    assert [photo.position for photo in stored] == [0, 1, 2]
    assert stored[0].image.name == listing.image.name and stored[0].image_sha256 == listing.image_sha256
    for photo, data in zip(stored, photos):
        assert photo.image.name.startswith("listings/") and "photo" not in photo.image.name
        with default_storage.open(photo.image.name, "rb") as handle:
            assert handle.read() == data
        assert photo.image_sha256 == decode_image(data).sha256


def test_more_photos_than_max_photos_are_refused_before_anything_is_stored(seller_client, everything_matches, settings):
    settings.LISTINGS = {"MAX_PHOTOS": 2}

    response = upload(seller_client, [image_bytes(color=RED)] * 3)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_file"
    assert Listing.objects.count() == ListingPhoto.objects.count() == 0


def test_as_many_photos_as_max_photos_reach_the_upload_and_are_stored(seller_client, everything_matches):
    # Django's own file limit (DATA_UPLOAD_MAX_NUMBER_FILES) follows MAX_PHOTOS: 10 photos are no 400.
    photos = [image_bytes(color=(25 * index, 40, 200 - 15 * index)) for index in range(10)]

    response = upload(seller_client, photos)

    assert response.status_code == 201, response.content
    assert response.json()["photos"] == 10
    assert ListingPhoto.objects.filter(listing_id=response.json()["listing_id"]).count() == 10


def test_one_photo_over_max_photos_is_refused_and_nothing_is_stored(seller_client, everything_matches):
    response = upload(seller_client, [image_bytes(color=RED)] * 11)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("too_many_files", "invalid_file")
    assert Listing.objects.count() == ListingPhoto.objects.count() == 0


def test_photos_below_the_same_item_threshold_send_the_listing_to_review(seller_client, everything_matches, settings):
    settings.LISTINGS = {"PHOTOS_SAME_ITEM_THRESHOLD": 1.0}  # nothing but identical photos is the same item

    body = upload(seller_client, [image_bytes(color=RED), image_bytes(color=BLUE)]).json()

    assert body["status"] == "needs_review"
    reason = next(r for r in body["reasons"] if r["code"] == "photos_differ")
    assert (reason["field"], reason["photo"], reason["threshold"]) == ("photos", 1, 1.0)
    assert 0 <= reason["similarity"] < 1.0
    assert "Photo 2" in body["suggestion"]
    assert Listing.objects.get().reasons == body["reasons"]


def test_photos_above_the_same_item_threshold_pass(seller_client, everything_matches, settings):
    settings.LISTINGS = {"PHOTOS_SAME_ITEM_THRESHOLD": 0.0}

    body = upload(seller_client, [image_bytes(color=RED), image_bytes(color=BLUE)]).json()

    assert body["status"] == "approved" and body["reasons"] == [] and body["suggestion"] is None


def test_each_text_is_judged_against_its_best_photo(seller_client, split_threshold):
    # MATCHING_TEXT matches the red photo only; sent second, it still decides.
    body = upload(seller_client, [image_bytes(color=(128, 128, 128)), image_bytes(color=RED)]).json()

    listing = Listing.objects.get(pk=body["listing_id"])
    analysis = Analysis.objects.get(pk=body["description_check"]["analysis_id"])
    assert analysis.image_sha256 == listing.photos.get(position=1).image_sha256
    assert body["description_check"]["is_mismatch"] is False


def test_a_rejected_upload_stores_none_of_its_photos(seller_client, nothing_matches, settings):
    settings.LISTINGS = {"UPLOAD_POLICY": "reject"}

    response = upload(seller_client, [image_bytes(color=RED), image_bytes(color=BLUE)])

    assert response.status_code == 422
    assert response.json()["reasons"][0]["field"] == "description"
    assert Listing.objects.count() == ListingPhoto.objects.count() == 0
    assert not default_storage.exists("listings") or default_storage.listdir("listings")[1] == []


def test_a_check_stores_reasons_and_the_threshold_relative_band(make_listing, settings):
    set_clip_settings(settings, THRESHOLD=1.0)
    listing = make_listing()

    services.listing_check(listing=listing)

    listing.refresh_from_db()
    assert listing.status == "needs_review" and listing.checked_threshold == 1.0
    assert {(r["code"], r["field"]) for r in listing.reasons} >= {("low_similarity", "title"), ("low_similarity", "description")}
    # A mismatch is never labelled fair or better, whatever the score.
    assert listing.match_quality in ("poor", "mismatch")


def test_the_changelist_and_change_page_show_the_reasons(admin_client, make_listing, settings):
    set_clip_settings(settings, THRESHOLD=1.0)
    listing = make_listing()
    services.listing_check(listing=listing)
    listing.refresh_from_db()

    changelist = admin_client.get("/admin/listings/listing/").content.decode()
    change = admin_client.get(f"/admin/listings/listing/{listing.pk}/change/").content.decode()
    queue = admin_client.get("/admin/listings/reviewqueueitem/").content.decode()

    sentence = f"The description does not match the photo: it scores {listing.description_score:.3f}, below the threshold 1.000."
    for page in (changelist, change, queue):
        # In words: the label everywhere; the sentence on the change page, on hover in the lists.
        assert 'data-code="low_similarity" data-field="description"' in page
        assert "<strong>Text does not match the photo</strong> (description)" in page and sentence in page
        assert "<code>low_similarity</code>" not in page


def test_replacing_another_photo_in_the_admin_rechecks_the_listing(admin_client, seller_client, everything_matches, settings):
    body = upload(seller_client, [image_bytes(color=RED), image_bytes(color=BLUE)]).json()
    listing = Listing.objects.get(pk=body["listing_id"])
    second = listing.photos.get(position=1)
    settings.LISTINGS = {"PHOTOS_SAME_ITEM_THRESHOLD": 1.0}
    new_data = image_bytes(color=GREEN)

    response = admin_client.post(f"/admin/listings/listing/{listing.pk}/change/", {
        "title": "", "description": listing.description, "category": "", "price": "",
        "photos-TOTAL_FORMS": "1", "photos-INITIAL_FORMS": "1", "photos-MIN_NUM_FORMS": "0",
        "photos-MAX_NUM_FORMS": "1000", "photos-0-id": str(second.pk), "photos-0-listing": str(listing.pk),
        "photos-0-image": SimpleUploadedFile("x.png", new_data, content_type="image/png"),
        "decisions-TOTAL_FORMS": "0", "decisions-INITIAL_FORMS": "0",
    }, follow=True)

    assert response.status_code == 200
    second.refresh_from_db()
    assert second.image_sha256 == decode_image(new_data).sha256
    fresh = Listing.objects.get(pk=listing.pk)
    assert fresh.checked_at > listing.checked_at
    assert any(r["code"] == "photos_differ" for r in fresh.reasons) and fresh.status == "needs_review"


def test_the_audit_report_carries_the_reasons(make_listing, settings, tmp_path):
    set_clip_settings(settings, THRESHOLD=1.0)
    listing = make_listing()
    report = tmp_path / "audit.json"

    call_command("clip_audit", "--no-progress", "--report", str(report))

    row, = json.loads(report.read_text())
    listing.refresh_from_db()
    assert row["reasons"] == listing.reasons and row["reasons"]
    assert row["suggestion"] and "description" in row["suggestion"]


def test_the_orphan_sweep_keeps_every_photo_of_a_listing(seller_client, everything_matches):
    from datetime import timedelta

    from listings.sweep import orphans_sweep

    body = upload(seller_client, [image_bytes(color=RED), image_bytes(color=BLUE)]).json()
    names = [photo.image.name for photo in ListingPhoto.objects.filter(listing_id=body["listing_id"])]

    result = orphans_sweep(grace=timedelta(0))

    assert result.files == []
    assert len(names) == 2 and all(default_storage.exists(name) for name in names)


def test_a_listing_without_a_title_is_never_said_to_have_a_different_title():
    from listings.similarity import titles_conflict_check

    # Unknown, not a conflict: the reason must not say "under a different title".
    assert titles_conflict_check(first="", second="Blue star pendant") is None
    assert titles_conflict_check(first="Blue star pendant", second="  ") is None
    assert titles_conflict_check(first="Blue star", second="blue star ") is False
