"""The quality badges' colours meet WCAG AA: the page at / and the admin's score badges."""

import re
from pathlib import Path

import pytest

from tests.support.colours import contrast_ratio, css_rgb

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "index.html"


def test_the_contrast_ratio_is_the_wcag_one():
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert contrast_ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)


def stylesheet():
    return re.search(r"<style>(.*?)</style>", TEMPLATE.read_text(), re.S).group(1)


def test_every_quality_badge_meets_wcag_aa():
    css = stylesheet()
    qualities = dict(re.findall(r"\.quality-([\w-]+)\s*\{\s*--quality:\s*(#[0-9a-fA-F]{6})", css))
    from clipcheck.settings import DEFAULTS

    assert set(DEFAULTS["QUALITY_BANDS"]) <= set(qualities)
    badge = re.search(r"\.badge\s*\{([^}]*)\}", css).group(1)
    text = css_rgb(re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", badge).group(1))
    fallback = re.search(r"var\(--quality,\s*(#[0-9a-fA-F]{6})\)", badge).group(1)
    for name, background in {**qualities, "unknown label": fallback}.items():
        assert contrast_ratio(text, css_rgb(background)) >= 4.5, name


def test_every_admin_score_badge_meets_wcag_aa():
    css = (TEMPLATE.parents[1] / "listings" / "static" / "listings" / "admin.css").read_text()
    bands = dict(re.findall(r'\.clip-score\[data-quality="([\w-]+)"\]\s*\{\s*--band-colour:\s*(#[0-9a-fA-F]{6})', css))
    fallback = re.search(r"\.clip-score\s*\{\s*--band-colour:\s*(#[0-9a-fA-F]{6})", css).group(1)
    from clipcheck.settings import DEFAULTS

    assert set(DEFAULTS["QUALITY_BANDS"]) <= set(bands)
    badge = re.search(r"\.clip-score \.clip-band\s*\{([^}]*)\}", css).group(1)
    text = css_rgb(re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", badge).group(1))
    for name, background in {**bands, "a project's own band": fallback}.items():
        assert contrast_ratio(text, css_rgb(background)) >= 4.5, name


# What the page says of the running model, and its samples (clipproject/views.py).

REPO = TEMPLATE.parents[1]


def page_text(client):
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def placeholder(html):
    return re.search(r'<textarea id="text"[^>]*placeholder="([^"]*)"', html).group(1)


def visible_text(html):
    """The page's words as a reader sees them: no markup, no script, no style."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_with_the_demo_model_the_page_says_it_knows_coloured_shapes(client, demo_model):
    from knownanswer import domain

    html = page_text(client)
    words = visible_text(html)
    assert "This demo model knows coloured shapes: circle, square, triangle, star, cross and ring in red, green, " \
        "blue, yellow, purple, orange, black and white." in words
    # The configured categories (clip_demo's are the shapes).
    assert demo_model["CATEGORIES"] == list(domain.SHAPES)
    assert "sorts photos into 6 categories: circle, square, triangle, star, cross and ring." in words
    # Nothing it does not know is suggested.
    assert "sneaker" not in html.lower()
    assert placeholder(html) == "e.g. a red star"


def test_with_the_demo_model_the_page_offers_samples_with_a_right_and_a_wrong_text(client, demo_model):
    from clipproject.views import SAMPLES

    html = page_text(client)
    assert len(SAMPLES) >= 3
    for sample in SAMPLES:
        assert f'data-picture="/samples/{sample.name}.png"' in html
        assert f'class="sample-text right" data-text="{sample.right_text}"' in html
        assert f'class="sample-text wrong" data-text="{sample.wrong_text}"' in html
        assert sample.right_text != sample.wrong_text


def test_the_page_names_another_models_categories_and_suggests_nothing_it_does_not_know(client, settings):
    from clipcheck.categories import DEFAULT_CATEGORIES

    settings.CLIPCHECK = {**settings.CLIPCHECK, "CATEGORIES": ["teapots", "mugs", "saucers"]}
    html = page_text(client)
    words = visible_text(html)
    assert "sorts photos into 3 categories: teapots, mugs and saucers." in words
    assert "demo model" not in words and 'class="sample' not in html
    assert "sneaker" not in html.lower()
    # A neutral example, whatever the catalogue.
    assert not set(re.findall(r"\w+", placeholder(html))) & {word for category in DEFAULT_CATEGORIES for word in category.split()}


def test_a_relative_path_to_the_known_answer_model_is_the_demo_model(client, settings, monkeypatch):
    """As docs/known_answer.md starts it by hand: CLIPCHECK_MODEL=tests/fixtures/known_answer_clip."""
    monkeypatch.chdir(REPO)
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": "tests/fixtures/known_answer_clip"}
    assert "This demo model knows coloured shapes" in page_text(client)
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": "openai/clip-vit-base-patch32"}
    assert "This demo model" not in page_text(client)


def test_the_page_carries_every_reason_label_in_words(client):
    import json

    from clipcheck.reasons import reason_types

    html = page_text(client)
    labels = json.loads(re.search(r'<script id="reason-labels" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert labels == {reason_type.code: reason_type.label for reason_type in reason_types()}
    assert {"low_similarity", "attribute_conflict", "object_conflict", "category_conflict"} <= set(labels)
    assert all("_" not in label for label in labels.values())


@pytest.mark.django_db
def test_the_sample_pictures_are_served_only_with_the_demo_model(client, settings, demo_model):
    from clipcheck.images import decode_image
    from clipproject.views import SAMPLES

    for sample in SAMPLES:
        response = client.get(f"/samples/{sample.name}.png")
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert "max-age=86400" in response["Cache-Control"]
        assert decode_image(response.content).size == (160, 160)
        assert client.get(f"/samples/{sample.name}.png").content == response.content  # drawn alike every time
    assert client.get("/samples/blue-moon.png").status_code == 404
    settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": "openai/clip-vit-base-patch32"}
    assert client.get(f"/samples/{SAMPLES[0].name}.png").status_code == 404


@pytest.mark.django_db
def test_each_samples_right_text_matches_and_its_wrong_text_does_not(client, demo_model):
    from clipcheck.reasons import reason_label
    from clipproject.views import SAMPLES

    for sample in SAMPLES:
        picture = client.get(f"/samples/{sample.name}.png").content
        answers = {}
        for text in (sample.right_text, sample.wrong_text):
            response = client.post("/clip/analyze", {"file": _upload(picture), "text": text})
            assert response.status_code == 200, response.content
            answers[text] = response.json()
        right, wrong = answers[sample.right_text], answers[sample.wrong_text]
        assert not right["is_mismatch"] and right["reasons"] == [], (sample, right)
        # With a margin: the demo may serve another runtime than these tests.
        assert right["similarity_score"] - right["threshold_used"] > 0.1, (sample, right)
        assert wrong["is_mismatch"] and wrong["threshold_used"] - wrong["similarity_score"] > 0.1, (sample, wrong)
        assert wrong["reasons"] and all("_" not in reason_label(reason["code"]) for reason in wrong["reasons"])


def _upload(data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("sample.png", data, content_type="image/png")
