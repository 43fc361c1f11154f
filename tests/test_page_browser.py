"""The page at / in a real headless browser: upload a photo, type a description, see the verdict."""

import re
import time
from pathlib import Path

import pytest

from clipcheck import verdicts
from clipcheck.images import decode_image
from clipcheck.models import Analysis
from clipcheck.reasons import reason_label
from clipcheck.services.classification import image_classify
from tests.support.colours import contrast_ratio, css_rgb
from tests.support.images import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_person_checks_a_photo_against_a_description(browser_page, live_server):
    page = browser_page
    page.goto(f"{live_server.url}/")
    assert page.title() == "Does the photo match the description?"

    photo = image_bytes(color=(200, 30, 30))
    page.set_input_files("#file", files=[{"name": "sneaker.png", "mimeType": "image/png", "buffer": photo}])
    page.fill("#text", "red leather sneakers")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])")

    analysis = Analysis.objects.get()
    # Score and threshold at the same precision (the API's 4 decimals).
    assert page.text_content("#score") == f"{analysis.similarity_score:.4f}"
    assert page.text_content("#threshold") == f"{analysis.threshold:.4f}"
    assert page.text_content("#quality") == analysis.match_quality
    assert page.text_content("#confidence") == analysis.confidence
    expected = "does not match" if analysis.is_mismatch else "matches"
    assert expected in page.text_content("#verdict")
    width = page.eval_on_selector("#score-fill", "element => element.style.width")
    assert width == f"{round(analysis.similarity_score * 100)}%"
    # Reasons in words (their label) with their message, and the seller's sentence as the API gave them.
    assert page.locator("#reasons li.reason").all_text_contents() == [
        f"{reason_label(r['code'])}: {r['message']}" for r in analysis.reasons
    ]
    assert (page.text_content("#suggestion") or "") == (verdicts.suggestion(analysis.reasons) or "")
    # Only categories the model is confident about (standalone score > 0.5), else a plain statement.
    confident = [m for m in image_classify(image=decode_image(photo)) if m["score"] > 0.5]
    categories = page.locator("#categories li").all_text_contents()
    assert categories == (
        [f"{m['category']} ({m['score']:.2f})" for m in confident] or ["Nothing the model is confident about."]
    )
    assert page.is_visible("#preview")
    assert page.is_hidden("#truncated") and page.is_hidden("#passages-box")
    # The badge as rendered: white on its quality colour, WCAG AA.
    colours = page.eval_on_selector("#quality", "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
    assert contrast_ratio(*(css_rgb(colour) for colour in colours)) >= 4.5, colours


def test_a_file_that_is_not_an_image_shows_the_error(browser_page, live_server):
    page = browser_page
    page.goto(f"{live_server.url}/")

    page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"just text"}])
    page.fill("#text", "a red shoe")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")

    assert "not a recognised image" in page.text_content("#error")
    assert page.is_hidden("#result")


@pytest.mark.parametrize("name, mime, data", [
    ("notes.png", "image/png", b"just text"),  # claims to be an image, is not
    ("notes.txt", "text/plain", b"just text"),
])
def test_a_file_that_is_not_an_image_gets_no_broken_preview(browser_page, live_server, name, mime, data):
    page = browser_page
    page.goto(f"{live_server.url}/")
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])
    page.wait_for_function("() => !document.getElementById('preview').hasAttribute('src')")
    assert page.is_hidden("#preview")
    # A real photo afterwards is previewed again.
    page.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": image_bytes()}])
    page.wait_for_selector("#preview", state="visible")


def test_a_long_texts_best_passage_reasons_and_suggestion_are_shown(browser_page, live_server):
    """The page renders what the answer carries (a stubbed answer: the fields, not the model, are under test)."""
    page = browser_page
    text = "Ships in a <b>box</b>. " * 20 + "Red leather sneakers."
    start = text.index("Red leather")
    answer = {
        "is_mismatch": False, "similarity_score": 0.31234, "threshold_used": 0.25, "confidence": "medium",
        "match_quality": "good", "text_truncated": True,
        "passages": {"count": 21, "covered": False, "best": {"index": 20, "start": start, "end": len(text), "score": 0.3123}},
        "reasons": [
            {"code": "attribute_conflict", "field": "text", "message": "The text says <i>red</i> but the photo looks blue."},
            {"code": "newer_server_reason", "field": "text", "message": "A reason this page's registry does not know."},
        ],
        "suggestion": "The photo looks blue; your text says red.",
    }
    page.route("**/clip/analyze", lambda route: route.fulfill(json=answer))
    page.route("**/clip/classify", lambda route: route.fulfill(json={"top_matches": [
        {"category": "sneakers", "score": 0.91, "similarity": 0.3, "probability": 0.6},
        {"category": "boots", "score": 0.2, "similarity": 0.2, "probability": 0.4}]}))
    page.goto(f"{live_server.url}/")
    page.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": image_bytes()}])
    page.fill("#text", text)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])")
    assert page.is_visible("#truncated")
    assert page.locator("#passages li").all_text_contents() == [
        "Best of 21 passages: \u201cRed leather sneakers.\u201d (0.3123)",
    ]
    # Markup in answers is shown as text, never interpreted; a code never shows, even one the page does not know.
    assert page.locator("#reasons li.reason").all_text_contents() == [
        "Wrong colour, material or pattern: " + answer["reasons"][0]["message"],
        "Newer server reason: " + answer["reasons"][1]["message"],
    ]
    assert page.text_content("#suggestion") == answer["suggestion"]
    assert page.locator("#categories li").all_text_contents() == ["sneakers (0.91)"]
    assert page.text_content("#score") == "0.3123" and page.text_content("#threshold") == "0.2500"


NEWCOMER_SECONDS = 60
SNAKE_CASE = re.compile(r"\b[a-z]+_[a-z_]+\b")


def test_a_newcomer_gets_a_right_and_a_wrong_answer_from_a_sample(browser_page, live_server, demo_model):
    """The demo's page, as clip_demo serves it: one click on a sample's right text, one on its wrong
    text, and both answers are on screen, the wrong one with its reasons in words."""
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 900})
    loaded = time.monotonic()
    page.goto(f"{live_server.url}/")
    assert "This demo model knows coloured shapes" in page.text_content("#model-domain")
    sample = page.locator(".sample").first
    right, wrong = sample.locator("button.right"), sample.locator("button.wrong")
    # Both texts are in the first screenful: nothing to scroll to, nothing to read first.
    for button in (right, wrong):
        box = button.bounding_box()
        assert box["y"] + box["height"] <= 900, box

    right.click()
    sample.locator("button.right + .sample-verdict:not(:empty)").wait_for()
    assert page.is_visible("#result") and "matches" in page.text_content("#verdict")
    assert page.get_attribute("#verdict", "class") == "verdict match"
    assert page.is_hidden("#reasons")
    assert "matches." in sample.locator("button.right + .sample-verdict").text_content()

    wrong.click()
    sample.locator("button.wrong + .sample-verdict:not(:empty)").wait_for()
    answered = time.monotonic() - loaded
    assert "does not match" in page.text_content("#verdict")
    assert page.get_attribute("#verdict", "class") == "verdict mismatch"
    labels = page.locator("#reasons .reason-label").all_text_contents()
    assert "Wrong colour, material or pattern" in labels, labels  # the red star called blue
    assert all(label and "_" not in label for label in labels), labels
    assert "does not match: " in sample.locator("button.wrong + .sample-verdict").text_content()
    # The picture and the text checked are in the form, as if chosen by hand.
    assert page.input_value("#text") == page.get_attribute("button.wrong >> nth=0", "data-text")
    assert page.eval_on_selector("#file", "input => input.files[0].name") == "red-star.png"
    assert page.is_visible("#preview")
    # No code anywhere a person can read.
    assert SNAKE_CASE.findall(page.inner_text("body")) == []
    print(f"\nnewcomer: page load to the right and the wrong answer in {answered:.1f} s (model loaded on first use)")
    assert answered < NEWCOMER_SECONDS


@pytest.mark.parametrize("model", ["a product model", "the demo model"])
def test_the_page_has_a_favicon_and_loads_nothing_missing(browser_page, live_server, model, request):
    if model == "the demo model":
        request.getfixturevalue("demo_model")  # its sample pictures load too
    page = browser_page
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    page.goto(f"{live_server.url}/")
    page.wait_for_load_state("networkidle")
    assert page.get_attribute("link[rel=icon]", "href").startswith("data:image/svg+xml")
    assert missing == []
    if model == "the demo model":
        assert page.eval_on_selector_all(".sample img", "images => images.map(image => image.naturalWidth)") == [160] * 3


def test_a_script_on_another_origin_reads_retry_after(browser_page, live_server, settings):
    """The cross-origin fetch of docs/api-access.md: the shop's page (origin http://localhost:PORT)
    calls the API at http://127.0.0.1:PORT and reads when to retry."""
    shop = live_server.url.replace("127.0.0.1", "localhost")
    api = shop.replace("localhost", "127.0.0.1")
    settings.CORS_ALLOWED_ORIGINS = [shop]
    settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"categories": {"rate": "1/minute"}}}
    page = browser_page
    page.goto(f"{shop}/")
    statuses = page.evaluate("""async (api) => {
        const first = await fetch(api + "/clip/categories");
        const second = await fetch(api + "/clip/categories");
        return [first.status, (await first.json()).count, second.status, second.headers.get("Retry-After")];
    }""", api)
    assert statuses[0] == 200 and statuses[1] > 0
    assert statuses[2] == 429 and int(statuses[3]) > 0


@pytest.mark.django_db(transaction=False)
def test_browser_tests_fail_under_ci_without_chromium_and_skip_elsewhere(tmp_path):
    from tests.support.browser import CHROMIUM, require_chromium

    missing = str(tmp_path / "no-chromium")
    with pytest.raises(pytest.fail.Exception, match="Browser tests need Chromium"):
        require_chromium(missing, environ={"CI": "true"})
    with pytest.raises(pytest.skip.Exception):
        require_chromium(missing, environ={})
    if Path(CHROMIUM).exists():
        require_chromium(environ={"CI": "true"})  # present: nothing raised
