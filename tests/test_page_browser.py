"""The page at / in a real headless browser: upload a photo, type a description, see the verdict."""

from pathlib import Path

import pytest

from clipcheck.models import Analysis
from clipcheck.settings import clip_settings
from tests.support.images import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_person_checks_a_photo_against_a_description(browser_page, live_server):
    page = browser_page
    page.goto(f"{live_server.url}/")
    assert page.title() == "Does the photo match the description?"

    page.set_input_files("#file", files=[{
        "name": "sneaker.png", "mimeType": "image/png", "buffer": image_bytes(color=(200, 30, 30)),
    }])
    page.fill("#text", "red leather sneakers")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])")

    analysis = Analysis.objects.get()
    assert page.text_content("#score") == f"{analysis.similarity_score:.3f}"
    assert page.text_content("#quality") == analysis.match_quality
    assert page.text_content("#confidence") == analysis.confidence
    expected = "does not match" if analysis.is_mismatch else "matches"
    assert expected in page.text_content("#verdict")
    width = page.eval_on_selector("#score-fill", "element => element.style.width")
    assert width == f"{round(analysis.similarity_score * 100)}%"
    categories = page.locator("#categories li").all_text_contents()
    assert len(categories) == clip_settings.DEFAULT_TOP_K
    assert all(any(category.startswith(name + " (") for name in clip_settings.CATEGORIES) for category in categories)
    assert page.is_visible("#preview")


def test_a_file_that_is_not_an_image_shows_the_error(browser_page, live_server):
    page = browser_page
    page.goto(f"{live_server.url}/")

    page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"just text"}])
    page.fill("#text", "a red shoe")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")

    assert "not a recognised image" in page.text_content("#error")
    assert page.is_hidden("#result")


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
