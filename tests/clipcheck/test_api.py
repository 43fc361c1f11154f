"""The /clip/* contract: fields, types, and one JSON error format."""

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from clipcheck.engine import get_engine
from tests.support.images import image_bytes

pytestmark = pytest.mark.django_db

ANALYZE_FIELDS = {"is_mismatch", "similarity_score", "threshold_used", "confidence", "match_quality", "text_truncated"}


def upload(data=None, name="photo.png", content_type="image/png"):
    return SimpleUploadedFile(name, image_bytes() if data is None else data, content_type=content_type)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def reference_score(image_data, text):
    """Cosine computed from the engine's own encoders, outside the API."""
    engine = get_engine()
    image = Image.open(io.BytesIO(image_data)).convert("RGB")
    image_embedding = engine.encode_images([image])[0]
    text_embedding = engine.encode_texts([text])[0][0]
    return round(max(float(np.dot(image_embedding, text_embedding)), 0.0), 4)


# /clip/analyze

def test_analyze_returns_the_documented_fields(api_client):
    response = api_client.post("/clip/analyze", {"file": upload(), "text": "a red square"}, format="multipart")
    assert response.status_code == 200
    body = response.json()
    assert ANALYZE_FIELDS <= set(body)
    assert isinstance(body["is_mismatch"], bool)
    assert 0.0 <= body["similarity_score"] <= 1.0
    assert body["threshold_used"] == 0.25
    assert body["confidence"] in {"high", "medium", "low"}
    assert body["match_quality"] in {"excellent", "good", "fair", "poor", "mismatch"}
    assert body["text_truncated"] is False


def test_analyze_score_matches_the_engine_and_the_threshold_decides(api_client):
    data = image_bytes(color=(20, 200, 40))
    expected = reference_score(data, "green")
    for threshold in (0.0, 1.0, expected):
        response = api_client.post(
            "/clip/analyze", {"file": upload(data), "text": "green", "threshold": threshold}, format="multipart"
        )
        body = response.json()
        assert body["similarity_score"] == expected
        assert body["threshold_used"] == threshold
        assert body["is_mismatch"] is (expected < threshold)


def test_analyze_uses_the_configured_default_threshold(api_client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 0.9}
    body = api_client.post("/clip/analyze", {"file": upload(), "text": "x"}, format="multipart").json()
    assert body["threshold_used"] == 0.9


def test_analyze_scores_a_text_longer_than_the_context_as_passages_that_cover_it(api_client):
    long_text = "a long product description " * 40
    engine = get_engine()
    assert len(engine.tokenizer(long_text)["input_ids"]) > engine.max_text_tokens
    body = api_client.post("/clip/analyze", {"file": upload(), "text": long_text}, format="multipart").json()
    assert body["text_truncated"] is False
    passages = body["passages"]
    assert passages["count"] > 1 and passages["covered"] is True
    best = passages["best"]
    assert best["score"] == body["similarity_score"]
    # The best passage's span is a piece of the text that fits the context.
    assert 0 <= best["start"] < best["end"] <= len(long_text)
    assert len(engine.tokenizer(long_text[best["start"]:best["end"]])["input_ids"]) <= engine.max_text_tokens


def test_analyze_says_text_truncated_when_the_passages_per_text_bound_leaves_text_unscored(api_client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_PASSAGES": 1}
    body = api_client.post(
        "/clip/analyze", {"file": upload(), "text": "a long product description " * 40}, format="multipart"
    ).json()
    assert body["text_truncated"] is True
    assert body["passages"]["count"] == 1 and body["passages"]["covered"] is False


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"text": "a shoe"}, 400, "missing_file"),
        ({"file": "not-a-file", "text": "a shoe"}, 400, "invalid_file"),
        ({"file": "IMAGE", "text": ""}, 400, "invalid_text"),
        ({"file": "IMAGE", "text": "   \n\t"}, 400, "invalid_text"),
        ({"file": "IMAGE"}, 400, "missing_text"),
        ({"file": "IMAGE", "text": "x", "threshold": "abc"}, 400, "invalid_threshold"),
        ({"file": "IMAGE", "text": "x", "threshold": "1.5"}, 400, "invalid_threshold"),
        ({"file": "IMAGE", "text": "x", "threshold": "-0.1"}, 400, "invalid_threshold"),
        ({"file": "IMAGE", "text": "x", "threshold": "nan"}, 400, "invalid_threshold"),
        ({"file": "IMAGE", "text": "x", "threshold": "inf"}, 400, "invalid_threshold"),
        ({"file": "TEXTFILE", "text": "x"}, 415, "not_an_image"),
        ({"file": "EMPTY", "text": "x"}, 400, "empty_file"),
    ],
)
def test_analyze_refuses_bad_input_with_a_json_4xx(api_client, data, status, code):
    files = {"IMAGE": upload(), "TEXTFILE": upload(b"hello, not an image", name="x.jpg", content_type="image/jpeg"),
             "EMPTY": upload(b"")}
    payload = {key: files.get(value, value) for key, value in data.items()}
    assert_error(api_client.post("/clip/analyze", payload, format="multipart"), status, code)


def test_analyze_refuses_json_bodies(api_client):
    assert_error(api_client.post("/clip/analyze", {"text": "x"}, format="json"), 415, "unsupported_media_type")


def test_analyze_rejects_get(api_client):
    assert_error(api_client.get("/clip/analyze"), 405, "method_not_allowed")


def test_oversized_upload_is_413(api_client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_UPLOAD_BYTES": 1000}
    data = image_bytes(size=(400, 400), format="BMP")
    assert_error(api_client.post("/clip/analyze", {"file": upload(data), "text": "x"}, format="multipart"),
                 413, "file_too_large")


def test_unknown_path_is_a_json_404(api_client):
    assert_error(api_client.get("/clip/nope"), 404, "not_found")


# /clip/classify

def test_classify_returns_sorted_top_matches_clipped_to_the_category_count(api_client):
    response = api_client.post(
        "/clip/classify", {"file": upload(), "categories": "shoes, handbag ,watch", "top_k": 10}, format="multipart"
    )
    assert response.status_code == 200
    matches = response.json()["top_matches"]
    assert [set(match) >= {"category", "score"} for match in matches] == [True] * 3
    assert {match["category"] for match in matches} == {"shoes", "handbag", "watch"}
    similarities = [match["similarity"] for match in matches]
    assert similarities == sorted(similarities, reverse=True)
    scores = [match["score"] for match in matches]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(match["probability"] for match in matches) - 1.0) < 1e-3


def test_classify_defaults_to_the_catalogue_and_top_five(api_client, settings):
    body = api_client.post("/clip/classify", {"file": upload()}, format="multipart").json()
    assert len(body["top_matches"]) == 5
    assert {match["category"] for match in body["top_matches"]} <= set(settings.CLIPCHECK.get("CATEGORIES", [])) | set(
        api_client.get("/clip/categories").json()["categories"]
    )


def test_single_category_score_is_not_trivially_one(api_client, settings):
    """A softmax over one label is always 1.0; the score must still mean something."""
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 0.0}
    low = api_client.post("/clip/classify", {"file": upload(), "categories": "shoes"}, format="multipart").json()
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 1.0}
    high = api_client.post("/clip/classify", {"file": upload(), "categories": "shoes"}, format="multipart").json()
    (match_low,), (match_high,) = low["top_matches"], high["top_matches"]
    assert match_low["probability"] == match_high["probability"] == 1.0
    assert match_low["score"] > 0.5 > match_high["score"]


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"categories": " , ,,"}, "invalid_categories"),
        ({"categories": ",".join(f"c{i}" for i in range(1000))}, "invalid_categories"),
        ({"categories": "x" * 10_000}, "invalid_categories"),
        ({"top_k": 0}, "invalid_top_k"),
        ({"top_k": -3}, "invalid_top_k"),
        ({"top_k": "2.5"}, "invalid_top_k"),
        ({"top_k": "many"}, "invalid_top_k"),
    ],
)
def test_classify_refuses_bad_parameters(api_client, extra, code):
    assert_error(api_client.post("/clip/classify", {"file": upload(), **extra}, format="multipart"), 400, code)


def test_classify_deduplicates_categories_and_accepts_huge_top_k(api_client):
    body = api_client.post(
        "/clip/classify", {"file": upload(), "categories": "shoes,shoes, shoes ,bag", "top_k": 10**12},
        format="multipart",
    ).json()
    assert sorted(match["category"] for match in body["top_matches"]) == ["bag", "shoes"]


# /clip/categories

def test_categories_lists_the_catalogue(api_client):
    body = api_client.get("/clip/categories").json()
    assert body["count"] == len(body["categories"]) >= 40
    assert {"shoes", "sneakers", "boots", "sandals", "handbag", "backpack", "wallet"} <= set(body["categories"])


def test_categories_follow_settings(api_client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "CATEGORIES": ["mug", "lamp"]}
    assert api_client.get("/clip/categories").json() == {"categories": ["mug", "lamp"], "count": 2}


# /clip/analyze-batch

def write_image(root, name, **options):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(**options))
    return path


def test_batch_scores_every_item_in_input_order_like_analyze(api_client, batch_root):
    write_image(batch_root, "red.png", color=(220, 20, 20))
    write_image(batch_root, "sub/blue.jpg", format="JPEG", color=(20, 20, 220))
    items = [
        {"image_path": "sub/blue.jpg", "text": "blue", "threshold": 0.0},
        {"image_path": "red.png", "text": "red"},
    ]
    response = api_client.post("/clip/analyze-batch", {"items": items}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["image_path"] for result in results] == ["sub/blue.jpg", "red.png"]
    assert results[0]["threshold_used"] == 0.0 and results[1]["threshold_used"] == 0.25
    for item, result in zip(items, results):
        assert ANALYZE_FIELDS <= set(result)
        single = api_client.post(
            "/clip/analyze",
            {"file": upload((batch_root / item["image_path"]).read_bytes()), "text": item["text"]},
            format="multipart",
        ).json()
        assert result["similarity_score"] == single["similarity_score"]


def test_batch_item_errors_do_not_fail_the_others(api_client, batch_root, tmp_path):
    write_image(batch_root, "ok.png")
    outside = write_image(tmp_path, "outside.png")
    (batch_root / "escape.png").symlink_to(outside)
    (batch_root / "folder").mkdir()
    (batch_root / "notes.txt").write_text("not an image")
    items = [
        {"image_path": "ok.png", "text": "fine"},
        {"image_path": "../outside.png", "text": "x"},
        {"image_path": str(outside), "text": "x"},
        {"image_path": "escape.png", "text": "x"},
        {"image_path": "missing.png", "text": "x"},
        {"image_path": "folder", "text": "x"},
        {"image_path": "notes.txt", "text": "x"},
        {"image_path": "ok.png"},
        {"image_path": "ok\x00.png", "text": "x"},
        "not an object",
        {"image_path": "ok.png", "text": "again", "threshold": 7},
    ]
    response = api_client.post("/clip/analyze-batch", {"items": items}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    codes = [result.get("error", {}).get("code") for result in results]
    assert codes == [
        None,
        "path_outside_root",
        "path_outside_root",
        "path_outside_root",
        "file_not_found",
        "not_a_file",
        "not_an_image",
        "missing_text",
        "invalid_image_path",
        "invalid_item",
        "invalid_threshold",
    ]
    assert "similarity_score" in results[0]


def test_batch_runs_in_batches_not_one_forward_per_item(api_client, batch_root, settings, monkeypatch):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_SIZE": 4}
    for index in range(10):
        write_image(batch_root, f"{index}.png", color=(index * 20, 50, 50))
    engine = get_engine()
    batch_sizes = []
    original = engine._forward_images

    def counting(pixel_values):
        batch_sizes.append(pixel_values.shape[0])
        return original(pixel_values)

    monkeypatch.setattr(engine, "_forward_images", counting)
    items = [{"image_path": f"{index}.png", "text": "x"} for index in range(10)]
    assert api_client.post("/clip/analyze-batch", {"items": items}, format="json").status_code == 200
    assert batch_sizes == [4, 4, 2]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"items": []}, "invalid_items"),
        ({"items": "a.png"}, "invalid_items"),
        ({}, "missing_items"),
        ([1, 2], "invalid_request"),
    ],
)
def test_batch_refuses_malformed_bodies(api_client, body, code):
    assert_error(api_client.post("/clip/analyze-batch", body, format="json"), 400, code)


def test_batch_refuses_non_json(api_client):
    response = api_client.generic("POST", "/clip/analyze-batch", "{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_batch_refuses_too_many_items(api_client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_MAX_ITEMS": 3}
    items = [{"image_path": "a.png", "text": "x"}] * 4
    assert_error(api_client.post("/clip/analyze-batch", {"items": items}, format="json"), 400, "invalid_items")


def test_batch_without_a_root_is_503(api_client, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "BATCH_ROOT": None}
    items = [{"image_path": "a.png", "text": "x"}]
    assert_error(api_client.post("/clip/analyze-batch", {"items": items}, format="json"), 503, "batch_disabled")


# /clip/health

def test_health_reports_the_loaded_model_and_device(api_client, tiny_model_dir):
    response = api_client.get("/clip/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["service"] == "CLIP analyzer"
    assert body["model_loaded"] is True
    assert body["device"] == "cpu"
    # A local checkpoint is named, its path on the server is not told.
    assert body["model"] == Path(tiny_model_dir).name


def test_cors_allows_only_configured_origins(api_client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://shop.example"]
    allowed = api_client.get("/clip/categories", HTTP_ORIGIN="https://shop.example")
    other = api_client.get("/clip/categories", HTTP_ORIGIN="https://evil.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Access-Control-Allow-Origin" not in other


def test_a_category_spelt_composed_or_decomposed_is_one_category(api_client, png_bytes):
    composed, decomposed = "caf\u00e9 table", "cafe\u0301 table"
    response = api_client.post(
        "/clip/classify", {"file": SimpleUploadedFile("a.png", png_bytes, content_type="image/png"),
                           "categories": f"{composed},{decomposed},shoes"}, format="multipart",
    )
    assert response.status_code == 200
    assert sorted(match["category"] for match in response.json()["top_matches"]) == [composed, "shoes"]
