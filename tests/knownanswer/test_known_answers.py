"""Answers through the HTTP API with a model whose right answers are known
(each known-answer model: the CLIP and the SigLIP)."""

import io

import numpy as np
import pytest
from PIL import Image

from knownanswer import domain
from tests.support.runtime import RUNTIMES

pytestmark = pytest.mark.django_db

# Every shape in every colour, at the sizes the processor resizes from.
CASES = [
    (shape, colour, 5_000_000 + index, (96, 128, 224)[index % 3])
    for index, (shape, colour) in enumerate((s, c) for s in domain.SHAPES for c in domain.COLOURS)
]


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def analyze(api_client, data, text):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api_client.post(
        "/clip/analyze", {"file": SimpleUploadedFile("x.png", data, content_type="image/png"), "text": text},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    return response.json()


def classify(api_client, data, categories):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api_client.post(
        "/clip/classify",
        {"file": SimpleUploadedFile("x.png", data, content_type="image/png"), "categories": ",".join(categories),
         "top_k": len(categories)},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    return response.json()["top_matches"]


def auroc(positives, negatives):
    """Probability that a random positive scores above a random negative (ties count half)."""
    positives, negatives = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float((positives > negatives).mean() + 0.5 * (positives == negatives).mean())


def other(values, value, offset):
    return values[(values.index(value) + offset) % len(values)]


@pytest.fixture(scope="module")
def pictures():
    return {case: png(domain.render(*case[:3], size=case[3])) for case in CASES}


@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_analyze_tells_matching_captions_from_wrong_colours_and_shapes(api_client, pictures, known_answer):
    matches, wrong_colour, wrong_shape = [], [], []
    for (shape, colour, seed, size), data in pictures.items():
        matches.append(analyze(api_client, data, domain.caption(shape, colour, seed % 3)))
        wrong_colour.append(analyze(api_client, data, domain.caption(shape, other(domain.COLOURS, colour, 3), seed % 3)))
        wrong_shape.append(analyze(api_client, data, domain.caption(other(domain.SHAPES, shape, 2), colour, seed % 3)))

    def rate(results, mismatch):
        return sum(result["is_mismatch"] is mismatch for result in results) / len(results)

    assert all(result["threshold_used"] == known_answer.threshold for result in matches)
    assert rate(matches, False) >= 0.95
    assert rate(wrong_colour, True) >= 0.95
    assert rate(wrong_shape, True) >= 0.90
    scores = {name: [r["similarity_score"] for r in results]
              for name, results in (("match", matches), ("colour", wrong_colour), ("shape", wrong_shape))}
    assert auroc(scores["match"], scores["colour"]) >= 0.98
    assert auroc(scores["match"], scores["shape"]) >= 0.90


def test_classify_names_the_right_colour_and_shape(api_client, pictures):
    colour_categories = [f"{colour} object" for colour in domain.COLOURS]
    right_colour = right_shape = 0
    for (shape, colour, _, _), data in pictures.items():
        right_colour += classify(api_client, data, colour_categories)[0]["category"] == f"{colour} object"
        right_shape += classify(api_client, data, domain.SHAPES)[0]["category"] == shape
    assert right_colour / len(pictures) >= 0.90
    assert right_shape / len(pictures) >= 0.80


@pytest.fixture
def classify_threshold(settings, known_answer):
    """CLIP: calibrated on other pictures than the test's, midway between the
    median similarity of right and of wrong single colour prompts. A
    sigmoid-trained model's score is its own probability: no calibration."""
    from clipcheck.engine import get_engine

    if known_answer.sigmoid:
        return None
    engine = get_engine()
    right, wrong = [], []
    for index, colour in enumerate(domain.COLOURS * 3):
        picture = domain.render(domain.SHAPES[index % 6], colour, seed=6_000_000 + index, size=96)
        vector = engine.encode_images([picture])[0]
        prompts, _ = engine.encode_texts([f"a photo of a {colour} object", f"a photo of a {other(domain.COLOURS, colour, 5)} object"])
        right.append(float(prompts[0] @ vector))
        wrong.append(float(prompts[1] @ vector))
    threshold = round((np.median(right) + np.median(wrong)) / 2, 4)
    settings.CLIPCHECK = {**settings.CLIPCHECK, "CLASSIFY_THRESHOLD": threshold}
    return threshold


def test_a_single_category_score_separates_right_from_wrong(api_client, pictures, classify_threshold):
    right, wrong = [], []
    for (shape, colour, _, _), data in pictures.items():
        right.append(classify(api_client, data, [f"{colour} object"])[0]["score"])
        wrong.append(classify(api_client, data, [f"{other(domain.COLOURS, colour, 5)} object"])[0]["score"])
    assert sum(score > 0.5 for score in right) / len(right) >= 0.90
    assert sum(score < 0.5 for score in wrong) / len(wrong) >= 0.90
    assert auroc(right, wrong) >= 0.98


def test_batch_scores_equal_single_analyze_scores(api_client, pictures, batch_root):
    items = []
    for index, ((shape, colour, seed, _), data) in enumerate(list(pictures.items())[:12]):
        (batch_root / f"{index}.png").write_bytes(data)
        items.append({"image_path": f"{index}.png", "text": domain.caption(shape, other(domain.COLOURS, colour, index), 1)})
    results = api_client.post("/clip/analyze-batch", {"items": items}, format="json").json()["results"]
    for item, result in zip(items, results):
        single = analyze(api_client, (batch_root / item["image_path"]).read_bytes(), item["text"])
        assert result["similarity_score"] == single["similarity_score"]
        assert result["is_mismatch"] == single["is_mismatch"]


@pytest.mark.parametrize("runtime", RUNTIMES, indirect=True)
def test_pipeline_bugs_would_give_wrong_answers(api_client):
    """The model itself catches the bugs the decoder must not have."""
    red = domain.render("circle", "red", seed=7, size=96)
    swapped = Image.merge("RGB", red.split()[::-1])  # an RGB<->BGR mix-up
    assert not analyze(api_client, png(red), domain.caption("circle", "red"))["is_mismatch"]
    assert analyze(api_client, png(swapped), domain.caption("circle", "red"))["is_mismatch"]
