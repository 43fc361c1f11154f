"""The text's language through the API: the language field, Accept-Language, English by default, and a 400 for
a language the service does not support. Reasons and suggestions come back in the text's language."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clipcheck.models import Analysis
from tests.support.images import image_bytes
from tests.support.listings import RED

pytestmark = pytest.mark.django_db

# At threshold 1.0 nothing matches: every answer carries a low_similarity reason and a suggestion to read
# (followed by what the photo looks like, where the random test model is confident of a category).
MESSAGES = {
    "en": ("The text scores", "The photo does not match your text"),
    "de": ("Der Text erreicht", "Ihr Text passt nicht zum Foto"),
    "fr": ("Le texte obtient", "La photo ne correspond pas à votre texte"),
    "es": ("El texto obtiene", "La foto no coincide con su texto"),
}


def analyze(api_client, text="a red square", **fields):
    headers = {key: fields.pop(key) for key in list(fields) if key.startswith("HTTP_")}
    photo = SimpleUploadedFile("photo.png", image_bytes(color=RED), content_type="image/png")
    return api_client.post("/clip/analyze", {"file": photo, "text": text, "threshold": 1.0, **fields},
                           format="multipart", **headers)


def assert_in_language(body, language):
    message, suggestion = MESSAGES[language]
    reason, = body["reasons"]
    assert reason["code"] == "low_similarity" and reason["message"].startswith(message), reason
    assert body["suggestion"].startswith(suggestion)
    assert Analysis.objects.get(pk=body["analysis_id"]).language == language


@pytest.mark.parametrize("language", ["en", "de", "fr", "es"])
def test_the_language_field_chooses_the_words_of_the_answer(api_client, language):
    response = analyze(api_client, language=language)
    assert response.status_code == 200, response.content
    assert_in_language(response.json(), language)


@pytest.mark.parametrize(("header", "language"), [
    ("de-AT,de;q=0.9,en;q=0.8", "de"),
    ("it, fr-CH;q=0.7, de;q=0.5", "fr"),  # the first supported one by weight
    ("en;q=0.2, es-419;q=0.9", "es"),
    ("it, ja", "en"),  # nothing supported: English
    ("*", "en"),
    ("", "en"),
])
def test_without_a_field_the_accept_language_header_chooses(api_client, header, language):
    response = analyze(api_client, HTTP_ACCEPT_LANGUAGE=header)
    assert response.status_code == 200, response.content
    assert_in_language(response.json(), language)


def test_the_field_wins_over_the_header_and_an_empty_field_counts_as_absent(api_client):
    assert_in_language(analyze(api_client, language="es", HTTP_ACCEPT_LANGUAGE="de").json(), "es")
    assert_in_language(analyze(api_client, language="", HTTP_ACCEPT_LANGUAGE="fr").json(), "fr")


@pytest.mark.parametrize("language", ["it", "DE", "de-AT", "english", "x" * 200])
def test_an_unsupported_language_is_a_clear_400(api_client, language):
    response = analyze(api_client, language=language)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_language"
    assert "is not a supported language; use one of en, de, fr, es." in error["message"]
    assert not Analysis.objects.exists()


def test_a_stored_verdict_is_reused_only_in_its_own_language(api_client):
    first = analyze(api_client, language="de").json()
    again = analyze(api_client, language="de").json()
    french = analyze(api_client, language="fr").json()
    assert (first["cached"], again["cached"], french["cached"]) == (False, True, False)
    assert_in_language(again, "de")
    assert_in_language(french, "fr")


def test_a_batch_is_judged_in_its_language(api_client, batch_root):
    (batch_root / "red.png").write_bytes(image_bytes(color=RED))
    items = [{"image_path": "red.png", "text": "ein roter Stern", "threshold": 1.0}]
    response = api_client.post("/clip/analyze-batch", {"items": items, "language": "de"}, format="json")
    assert response.status_code == 200, response.content
    result, = response.json()["results"]
    assert result["reasons"][0]["message"].startswith(MESSAGES["de"][0])
    assert result["suggestion"].startswith(MESSAGES["de"][1])

    by_header = api_client.post("/clip/analyze-batch", {"items": items}, format="json", HTTP_ACCEPT_LANGUAGE="es")
    assert by_header.json()["results"][0]["suggestion"].startswith(MESSAGES["es"][1])

    refused = api_client.post("/clip/analyze-batch", {"items": items, "language": "pt"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_language"


@pytest.mark.parametrize(("language", "code"), [
    (None, "missing_language"), (5, "invalid_language"), (["de"], "invalid_language"),
    ({"code": "de"}, "invalid_language"), (True, "invalid_language"),
])
def test_a_batch_language_of_another_type_is_a_clear_400(api_client, batch_root, language, code):
    (batch_root / "red.png").write_bytes(image_bytes(color=RED))
    items = [{"image_path": "red.png", "text": "ein roter Stern"}]
    response = api_client.post("/clip/analyze-batch", {"items": items, "language": language}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
