"""POST /upload: the storefront's listing upload."""

import io

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from clipcheck.selectors import analyses_for_subject
from clipcheck.verdicts import suggestion
from listings.api.views import UploadView
from listings.models import Listing
from tests.support.images import image_bytes
from tests.support.listings import MATCHING_TEXT, MISMATCHING_TEXT, RED

pytestmark = pytest.mark.django_db


def upload(seller_client, *, data=None, filename="my holiday photo.png", **fields):
    payload = {"title": MATCHING_TEXT, "description": MATCHING_TEXT, **fields}
    if data is not False:
        payload["file"] = SimpleUploadedFile(filename, data or image_bytes(color=RED), content_type="image/png")
    return seller_client.post("/upload", payload)


def test_a_matching_upload_is_stored_and_approved(seller_client, split_threshold):
    response = upload(seller_client, category="bags", price="19.90")

    assert response.status_code == 201
    body = response.json()
    listing = Listing.objects.get(pk=body["listing_id"])
    assert body["status"] == listing.status == "approved"
    assert body["suggestion"] is None
    for field, score in (("title_check", listing.title_score), ("description_check", listing.description_score)):
        assert body[field]["similarity_score"] == score
        assert body[field]["is_mismatch"] is False
        assert {"threshold_used", "confidence", "match_quality", "cached", "analysis_id"} <= set(body[field])
    assert (listing.category, str(listing.price)) == ("bags", "19.90")
    assert {a.pk for a in analyses_for_subject(subject=listing)} == {
        body["title_check"]["analysis_id"], body["description_check"]["analysis_id"],
    }


def test_the_stored_image_gets_a_generated_name(seller_client, everything_matches):
    data = image_bytes(color=(5, 6, 7))
    body = upload(seller_client, data=data, filename="../../etc/evil name.html").json()

    listing = Listing.objects.get(pk=body["listing_id"])
    assert listing.image.name.startswith("listings/") and listing.image.name.endswith(".png")
    assert "evil" not in listing.image.name and "holiday" not in listing.image.name
    with default_storage.open(listing.image.name, "rb") as handle:
        assert handle.read() == data


def test_a_camera_mpo_jpeg_is_stored_and_served_as_a_jpeg(seller_client, everything_matches, admin_client):
    # Cameras with two lenses (and many phones) write MPO: a JPEG followed by more frames.
    frames = [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (64, 48), (190, 40, 30))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"

    body = upload(seller_client, data=buffer.getvalue(), filename="DSCF0001.MPO").json()

    listing = Listing.objects.get(pk=body["listing_id"])
    assert listing.image.name.endswith(".jpg")
    served = admin_client.get(reverse("admin:listings_listing_image", args=[listing.pk]))
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert b"".join(served) == buffer.getvalue()


def test_a_mismatch_is_stored_and_queued_under_the_default_flag_policy(seller_client, split_threshold):
    response = upload(seller_client, description=MISMATCHING_TEXT)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "needs_review"
    assert body["description_check"]["is_mismatch"] is True
    reason = next(r for r in body["reasons"] if r["field"] == "description")
    assert reason["code"] in ("low_similarity", "attribute_conflict")
    assert body["suggestion"] == suggestion(body["reasons"]) and "description" in body["suggestion"]
    assert Listing.objects.get(pk=body["listing_id"]).status == Listing.Status.NEEDS_REVIEW


def test_a_mismatching_description_is_refused_under_the_reject_policy(seller_client, split_threshold, settings):
    settings.LISTINGS = {"UPLOAD_POLICY": "reject", "SUGGESTION_TOP_K": 2}

    response = upload(seller_client, description=MISMATCHING_TEXT)

    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "image_text_mismatch"
    assert isinstance(body["similarity_score"], float)
    assert {"code": "low_similarity", "field": "description"}.items() <= next(
        r for r in body["reasons"] if r["code"] == "low_similarity"
    ).items()
    assert body["suggestion"] == suggestion(body["reasons"]) and "description" in body["suggestion"]
    assert Listing.objects.count() == 0
    assert not default_storage.exists("listings") or default_storage.listdir("listings")[1] == []


def test_a_matching_upload_passes_the_reject_policy(seller_client, split_threshold, settings):
    settings.LISTINGS = {"UPLOAD_POLICY": "reject"}

    assert upload(seller_client).status_code == 201


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"data": False}, 400, "missing_file"),
    ({"data": b"not an image at all"}, 415, "not_an_image"),
    ({"title": "", "description": ""}, 400, "missing_text"),
    ({"title": "   "}, 400, "invalid_title"),
    ({"title": "x" * 201}, 400, "invalid_title"),
    ({"description": "   "}, 400, "invalid_description"),
    ({"price": "-1"}, 400, "invalid_price"),
    ({"price": "lots"}, 400, "invalid_price"),
    ({"category": "c" * 101}, 400, "invalid_category"),
])
def test_bad_input_gets_a_clear_error(seller_client, change, status, code):
    response = upload(seller_client, **change)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert Listing.objects.count() == 0


def test_the_upload_view_is_plain_drf_with_an_access_policy():
    assert UploadView.access_scope == "upload"  # CLIPCHECK["ACCESS"]["upload"] decides who may call it
    assert [parser.media_type for parser in UploadView.parser_classes] == [
        "multipart/form-data", "application/x-www-form-urlencoded",
    ]


@pytest.mark.parametrize(("permissions", "status"), [(None, 401), ((), 403)])
def test_only_users_allowed_to_add_listings_may_upload(permissions, status, django_user_model):
    from rest_framework.test import APIClient

    api = APIClient()
    if permissions is not None:
        api.force_authenticate(django_user_model.objects.create_user(username="visitor"))
    response = api.post("/upload", {"title": "x", "description": "y"}, format="multipart")
    assert response.status_code == status
    assert response.json()["error"]["code"] in {"not_authenticated", "permission_denied"}
