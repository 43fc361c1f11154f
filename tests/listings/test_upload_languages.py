"""POST /upload in the seller's language: the listing keeps it, its reasons and suggestion are worded in it."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clipcheck.selectors import analyses_for_subject
from listings.models import Listing
from listings.services import listing_check
from tests.support.images import image_bytes
from tests.support.listings import RED

pytestmark = pytest.mark.django_db


def test_an_upload_is_judged_stored_and_answered_in_its_language(seller_client, nothing_matches):
    photo = SimpleUploadedFile("p.png", image_bytes(color=RED), content_type="image/png")
    response = seller_client.post("/upload", {"file": photo, "title": "ein roter Stern", "language": "de"})
    assert response.status_code == 201, response.content
    body = response.json()
    listing = Listing.objects.get(pk=body["listing_id"])
    assert listing.language == "de"
    assert body["suggestion"].startswith("Ihr Titel passt nicht zum Foto")
    assert body["title_check"]["suggestion"].startswith("Ihr Titel passt nicht zum Foto")
    assert body["reasons"][0]["message"].startswith("Der Text erreicht")


def test_an_upload_takes_accept_language_and_refuses_an_unsupported_language(seller_client, nothing_matches):
    photo = SimpleUploadedFile("p.png", image_bytes(color=RED), content_type="image/png")
    response = seller_client.post("/upload", {"file": photo, "description": "une étoile rouge"},
                                  HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")
    assert response.status_code == 201, response.content
    assert response.json()["suggestion"].startswith("La photo ne correspond pas à votre description")
    assert Listing.objects.get().language == "fr"

    photo = SimpleUploadedFile("p.png", image_bytes(color=RED), content_type="image/png")
    refused = seller_client.post("/upload", {"file": photo, "title": "x", "language": "nl"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_language"
    assert Listing.objects.count() == 1


def test_a_later_check_judges_the_listing_in_its_language(seller_client, nothing_matches):
    photo = SimpleUploadedFile("p.png", image_bytes(color=RED), content_type="image/png")
    body = seller_client.post("/upload", {"file": photo, "title": "una estrella roja", "language": "es"}).json()
    listing = Listing.objects.get(pk=body["listing_id"])

    listing_check(listing=listing)

    title_reason = next(reason for reason in listing.reasons if reason["field"] == "title")
    assert title_reason["message"].startswith("El texto obtiene")
    assert analyses_for_subject(subject=listing).first().language == "es"


def test_the_admin_shows_moderators_the_sellers_language_and_suggestion(seller_client, nothing_matches, admin_client):
    photo = SimpleUploadedFile("p.png", image_bytes(color=RED), content_type="image/png")
    body = seller_client.post("/upload", {"file": photo, "title": "ein roter Stern", "language": "de"}).json()

    page = admin_client.get(f"/admin/listings/listing/{body['listing_id']}/change/").content.decode()

    assert "Ihr Titel passt nicht zum Foto" in page  # what the seller was told
    assert "The title does not match the photo" in page  # the moderator's own words for the reason


def test_the_reject_policys_422_is_worded_in_the_sellers_language(seller_client, nothing_matches, settings):
    settings.LISTINGS = {"UPLOAD_POLICY": "reject"}
    photo = SimpleUploadedFile("p.png", image_bytes(color=RED), content_type="image/png")
    response = seller_client.post("/upload", {"file": photo, "description": "una estrella roja"},
                                  HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == {"code": "image_text_mismatch", "message": "La foto no coincide con la descripción."}
    assert body["suggestion"].startswith("La foto no coincide con su descripción")
    assert not Listing.objects.exists()
