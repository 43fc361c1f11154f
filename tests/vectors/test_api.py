"""POST /clip/embed and POST /clip/search: the existing endpoints' patterns (access policy, one error shape)."""

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clipcheck.engine import get_engine
from clipcheck.images import decode_image
from listings.api.views import SearchView
from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes
from tests.vectors.test_photo_reused import photo

pytestmark = pytest.mark.django_db


def png(data, name="p.png"):
    return SimpleUploadedFile(name, data, content_type="image/png")


# /clip/embed


def test_embed_gives_unit_embeddings_of_texts_and_photos_with_model_and_dimension(client, clip_config):
    first, second = image_bytes(color=(200, 30, 30)), photo()
    response = client.post("/clip/embed", {"text": ["a red bag", "blue shoes"], "file": [png(first), png(second)]})

    assert response.status_code == 200
    body = response.json()
    engine = get_engine()
    # A local checkpoint by its directory's name: its path is the server's business.
    assert body["model"] == Path(clip_config["MODEL"]).name and body["dim"] == engine.embedding_dim
    assert [item["text"] for item in body["texts"]] == ["a red bag", "blue shoes"]
    texts = np.array([item["embedding"] for item in body["texts"]])
    images = np.array([item["embedding"] for item in body["images"]])
    assert texts.shape == images.shape == (2, engine.embedding_dim)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    # The same vectors the engine computes, in the order sent.
    expected = engine.encode_images([decode_image(first).image, decode_image(second).image])
    assert np.allclose(images, expected, atol=1e-5)
    assert [item["sha256"] for item in body["images"]] == [decode_image(first).sha256, decode_image(second).sha256]


def test_embed_cosine_is_the_analyze_similarity(client):
    data = image_bytes(color=(40, 160, 40))
    embedded = client.post("/clip/embed", {"text": "a green bag", "file": png(data)}).json()
    analyzed = client.post("/clip/analyze", {"text": "a green bag", "file": png(data)}).json()

    cosine = float(np.dot(embedded["texts"][0]["embedding"], embedded["images"][0]["embedding"]))
    assert round(max(cosine, 0.0), 4) == pytest.approx(analyzed["similarity_score"], abs=1e-4)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({}, 400, "invalid_request"),
        ({"text": ["   "]}, 400, "invalid_text"),
        ({"file": [png(b"not an image")]}, 415, "not_an_image"),
    ],
)
def test_embed_refuses_bad_input_with_the_one_error_shape(client, payload, status, code):
    response = client.post("/clip/embed", payload)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_embed_refuses_more_items_than_the_limit(client, settings):
    set_clip_settings(settings, EMBED_MAX_ITEMS=2)
    # Too many files: refused before any is decoded (these would be 415 otherwise).
    files = client.post("/clip/embed", {"file": [png(b"x"), png(b"y"), png(b"z")]})
    texts = client.post("/clip/embed", {"text": ["a", "b", "c"]})

    for response in (files, texts):
        assert response.status_code == 400
        assert "the limit is 2" in response.json()["error"]["message"]


# /clip/search


@pytest.fixture
def catalogue(make_listing, everything_matches):
    """Three checked listings with different photos (the audit stores their embeddings)."""
    from django.core.management import call_command

    listings = {
        "left": make_listing(title="left", photo=photo(spot=(4, 4)), category="bags"),
        "right": make_listing(title="right", photo=photo(spot=(38, 26)), category="shoes"),
        "middle": make_listing(title="middle", photo=photo(spot=(20, 14)), category="bags"),
    }
    call_command("clip_audit", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())
    return listings


@pytest.fixture
def searcher(log_in_with):
    return log_in_with("listings.view_listing")


def test_search_by_photo_finds_the_listing_with_that_photo_first(searcher, catalogue):
    response = searcher.post("/clip/search", {"file": png(photo(spot=(38, 26))), "k": 2})

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 2
    assert results[0]["listing_id"] == catalogue["right"].pk
    assert results[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert results[0]["similarity"] >= results[1]["similarity"]


def test_search_by_text_ranks_by_the_photo_text_similarity(searcher, catalogue):
    response = searcher.post("/clip/search", {"text": "a red bag", "k": 3})

    engine = get_engine()
    text = engine.encode_texts(["a red bag"])[0][0]
    expected = sorted(
        catalogue.values(),
        key=lambda listing: -float(engine.encode_images([decode_image(listing.image.read()).image])[0] @ text),
    )
    assert [hit["listing_id"] for hit in response.json()["results"]] == [listing.pk for listing in expected]


def test_search_by_text_and_photo_together_uses_both(searcher, catalogue):
    photo_only = searcher.post("/clip/search", {"file": png(photo(spot=(38, 26))), "k": 3}).json()["results"]
    both = searcher.post("/clip/search", {"file": png(photo(spot=(38, 26))), "text": "a red bag", "k": 3}).json()

    # The photo's own listing stays first, but the text moves the similarities.
    assert both["results"][0]["listing_id"] == photo_only[0]["listing_id"]
    assert [hit["similarity"] for hit in both["results"]] != [hit["similarity"] for hit in photo_only]


def test_search_filters_by_status_and_category(searcher, catalogue):
    catalogue["middle"].status = "rejected"
    catalogue["middle"].save()

    by_category = searcher.post("/clip/search", {"text": "anything", "category": "bags"}).json()["results"]
    by_status = searcher.post("/clip/search", {"text": "anything", "status": "rejected"}).json()["results"]

    assert {hit["listing_id"] for hit in by_category} == {catalogue["left"].pk, catalogue["middle"].pk}
    assert [hit["listing_id"] for hit in by_status] == [catalogue["middle"].pk]


@pytest.mark.parametrize(
    ("payload", "code"),
    [({}, "invalid_request"), ({"text": "a", "file": "not an image"}, "invalid_file"), ({"text": "a", "k": 0}, "invalid_k"),
     ({"text": "a", "k": 101}, "invalid_k"), ({"text": "a", "status": "sold"}, "invalid_status")],
)
def test_search_refuses_bad_input_with_the_one_error_shape(searcher, payload, code):
    response = searcher.post("/clip/search", payload)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_search_is_closed_to_anonymous_clients_and_to_users_without_the_permission(client, log_in_with):
    anonymous = client.post("/clip/search", {"text": "a bag"})
    assert anonymous.status_code == 401

    refused = log_in_with().post("/clip/search", {"text": "a bag"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"


def test_search_view_is_plain_drf_with_an_access_policy():
    assert SearchView.access_scope == "search"


def test_staff_see_the_models_path_and_nobody_else_does(client, admin_client, searcher, clip_config):
    form = {"text": ["a red bag"]}
    assert admin_client.post("/clip/embed", form).json()["model"] == clip_config["MODEL"]
    assert client.post("/clip/embed", form).json()["model"] == Path(clip_config["MODEL"]).name
    assert searcher.post("/clip/search", {"text": "a red bag"}).json()["model"] == Path(clip_config["MODEL"]).name
