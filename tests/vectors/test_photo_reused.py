"""A reused photo is caught at upload and by the audit, with the other listing named."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image, ImageDraw, ImageOps

from clipcheck.models import ImageEmbedding
from listings.models import Listing
from tests.support.clip_settings import set_clip_settings
from tests.support.listings import MATCHING_TEXT

pytestmark = pytest.mark.django_db


def photo(*, mirrored=False, fmt="PNG", quality=90, spot=(10, 8)):
    """A red photo with a dark square: a picture with a layout (unlike a plain one)."""
    picture = Image.new("RGB", (64, 48), (200, 30, 30))
    ImageDraw.Draw(picture).rectangle([spot, (spot[0] + 20, spot[1] + 16)], fill=(20, 20, 90))
    if mirrored:
        picture = ImageOps.mirror(picture)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def upload(client, data, *, title=MATCHING_TEXT, name="photo.png"):
    return client.post("/upload", {
        "title": title, "description": MATCHING_TEXT, "file": SimpleUploadedFile(name, data, content_type="image/png"),
    })


@pytest.fixture
def as_seller(client, seller):
    def log_in(name):
        client.force_login(seller(name))
        return client

    return log_in


def stored_reasons(body):
    """The listing's stored reasons: what moderators read (the seller's 201 body says less)."""
    return Listing.objects.get(pk=body["listing_id"]).reasons


def test_the_same_photo_from_another_seller_is_sent_to_review_naming_the_first_listing(as_seller, everything_matches, settings):
    settings.LISTINGS = {"TITLE_CONFLICT_SIMILARITY": 1.0}  # any other title conflicts
    first = upload(as_seller("alice"), photo(), title="red bag").json()
    second = upload(as_seller("bob"), photo(), title="blue shoe")

    assert first["status"] == "approved" and first["reasons"] == []
    body = second.json()
    assert second.status_code == 201 and body["status"] == "needs_review"
    [reason] = stored_reasons(body)
    assert reason["code"] == "photo_reused" and reason["field"] == "photos"
    assert reason["listing_id"] == first["listing_id"]
    assert reason["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert reason["seller_differs"] is True and reason["titles_conflict"] is True
    assert f"#{first['listing_id']}" in reason["message"] and "another seller" in reason["message"]
    assert Listing.objects.get(pk=body["listing_id"]).seller.username == "bob"


def test_the_sellers_answer_says_the_photo_is_used_and_nothing_about_the_other_listing(as_seller, everything_matches, settings):
    settings.LISTINGS = {"TITLE_CONFLICT_SIMILARITY": 1.0}
    first = upload(as_seller("alice"), photo(), title="red bag").json()

    body = upload(as_seller("bob"), photo(), title="blue shoe").json()

    # Not the other listing's id, whose it is, whether its title differs, nor its photo's hash.
    assert body["reasons"] == [
        {"code": "photo_reused", "field": "photos", "message": "This photo is already used by another listing."}
    ]
    assert body["suggestion"] == "This photo is already used by another listing."
    assert str(first["listing_id"]) not in json.dumps({key: body[key] for key in ("reasons", "suggestion")})


def test_the_same_seller_and_title_are_reported_as_such(as_seller, everything_matches, settings):
    settings.LISTINGS = {"TITLE_CONFLICT_SIMILARITY": 0.0}  # no two titles conflict
    client = as_seller("alice")
    upload(client, photo(), title="red bag")
    [reason] = stored_reasons(upload(client, photo(), title="red bag, second offer").json())

    assert reason["seller_differs"] is False and reason["titles_conflict"] is False


def test_a_mirrored_jpeg_copy_is_a_near_duplicate(as_seller, everything_matches):
    first = upload(as_seller("alice"), photo()).json()
    copy = photo(mirrored=True, fmt="JPEG", quality=70)

    body = upload(as_seller("bob"), copy, name="copy.jpg").json()

    [reason] = stored_reasons(body)
    assert reason["listing_id"] == first["listing_id"]
    assert reason["similarity"] < 1.0 and reason["layout_similarity"] >= 0.9


def test_a_different_picture_is_not_a_reuse(as_seller, everything_matches):
    upload(as_seller("alice"), photo(spot=(4, 4)))
    body = upload(as_seller("bob"), photo(spot=(38, 26))).json()

    assert body["status"] == "approved" and body["reasons"] == []


def test_the_audit_flags_only_the_later_listing_of_a_shared_photo(make_listing, everything_matches):
    shared = photo()
    first, second, third = make_listing(photo=shared), make_listing(photo=shared), make_listing(photo=shared)
    alone = make_listing(photo=photo(spot=(38, 26)))

    call_command("clip_audit", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())

    for listing in (first, second, third, alone):
        listing.refresh_from_db()
    assert first.status == "approved" and first.reasons == []  # the first to show it owns it
    for later in (second, third):  # each names the first; the third also counts the second
        assert later.status == "needs_review"
        assert [(reason["code"], reason["listing_id"]) for reason in later.reasons] == [("photo_reused", first.pk)]
    assert "1 more listing(s) show it too" in third.reasons[0]["message"]
    assert alone.status == "approved" and alone.reasons == []


@pytest.mark.parametrize("recheck", ["admin", "clip_audit --recheck"])
def test_a_copycats_upload_never_sends_the_original_to_review(as_seller, everything_matches, recheck, admin_client):
    original = upload(as_seller("alice"), photo(), title="red bag").json()
    copy = upload(as_seller("bob"), photo(mirrored=True, fmt="JPEG", quality=80), title="red bag", name="c.jpg").json()
    assert copy["status"] == "needs_review"

    if recheck == "admin":
        response = admin_client.post("/admin/listings/listing/", {
            "action": "recheck_selected", "_selected_action": [original["listing_id"], copy["listing_id"]],
        })
        assert response.status_code == 302
    else:
        call_command("clip_audit", "--no-progress", "--recheck", stdout=io.StringIO(), stderr=io.StringIO())

    first = Listing.objects.get(pk=original["listing_id"])
    assert first.status == "approved" and first.reasons == [] and first.checked_at is not None
    later = Listing.objects.get(pk=copy["listing_id"])
    assert later.status == "needs_review" and [reason["listing_id"] for reason in later.reasons] == [first.pk]


def test_listings_created_at_the_same_moment_are_ordered_by_id(make_listing, everything_matches):
    shared = photo()
    first, second = make_listing(photo=shared), make_listing(photo=shared)
    Listing.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=first.created_at)

    call_command("clip_audit", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())

    assert Listing.objects.get(pk=first.pk).reasons == []
    assert [reason["listing_id"] for reason in Listing.objects.get(pk=second.pk).reasons] == [first.pk]


def test_the_audit_fills_the_layouts_of_embeddings_stored_without_one(make_listing, everything_matches):
    shared = photo()
    first = make_listing(photo=shared)
    call_command("clip_audit", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())
    ImageEmbedding.objects.update(layout=None)  # as stored before layouts were kept
    second = make_listing(photo=photo(mirrored=True))

    call_command("clip_audit", "--no-progress", "--recheck", stdout=io.StringIO(), stderr=io.StringIO())

    assert not ImageEmbedding.objects.filter(layout__isnull=True).exists()
    second.refresh_from_db()
    assert [reason["listing_id"] for reason in second.reasons] == [first.pk]


def test_a_stricter_threshold_lets_a_near_copy_pass(as_seller, everything_matches, settings):
    set_clip_settings(settings, NEAR_DUPLICATE_LAYOUT=1.0)
    upload(as_seller("alice"), photo())
    body = upload(as_seller("bob"), photo(fmt="JPEG", quality=60), name="copy.jpg").json()

    assert body["reasons"] == []


def test_a_second_photo_shown_by_another_listing_is_reported_with_its_position(as_seller, everything_matches):
    first = upload(as_seller("alice"), photo(spot=(4, 4))).json()
    client = as_seller("bob")
    response = client.post("/upload", {
        "title": MATCHING_TEXT, "description": MATCHING_TEXT,
        "file": [SimpleUploadedFile("own.png", photo(spot=(38, 26)), content_type="image/png"),
                 SimpleUploadedFile("theirs.png", photo(spot=(4, 4)), content_type="image/png")],
    })

    body = response.json()
    assert response.status_code == 201, body
    # The seller is told which of their photos; moderators which listing shows it.
    assert [reason for reason in body["reasons"] if reason["code"] == "photo_reused"] == [{
        "code": "photo_reused", "field": "photos", "message": "This photo is already used by another listing.",
        "photo": 1,
    }]
    [reason] = [reason for reason in stored_reasons(body) if reason["code"] == "photo_reused"]
    assert reason["listing_id"] == first["listing_id"] and reason["photo"] == 1


def test_another_listings_second_photo_is_found_too(as_seller, everything_matches):
    client = as_seller("alice")
    first = client.post("/upload", {
        "title": MATCHING_TEXT, "description": MATCHING_TEXT,
        "file": [SimpleUploadedFile("a.png", photo(spot=(38, 26)), content_type="image/png"),
                 SimpleUploadedFile("b.png", photo(spot=(4, 4)), content_type="image/png")],
    }).json()

    body = upload(as_seller("bob"), photo(spot=(4, 4))).json()

    assert [reason["listing_id"] for reason in stored_reasons(body) if reason["code"] == "photo_reused"] == [
        first["listing_id"]
    ]
