"""Swagger UI's "Try it out" in Chromium: the form comes pre-filled with values that work."""

import json

import pytest

from tests.support.images import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def try_it_out(page, operation_id):
    page.wait_for_selector(f"#{operation_id}")
    operation = page.locator(f"#{operation_id}")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("input[type=file]").wait_for()
    operation.locator("input[type=text]").first.wait_for()
    return operation


def form_values(operation):
    """Swagger UI names each form input by its placeholder (the field name)."""
    return dict(operation.locator("input:not([type=file])").evaluate_all("els => els.filter(e => e.placeholder).map(e => [e.placeholder, e.value])"))


def test_try_it_out_prefills_working_values_and_the_request_succeeds(browser_page, live_server, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "THRESHOLD": 0.31}
    page = browser_page
    page.goto(f"{live_server.url}/api/docs/")

    classify = try_it_out(page, "operations-clip-clip_classify_create")
    # From the configured catalogue and attributes (the defaults here).
    assert form_values(classify) == {"categories": "shoes,sneakers,boots", "top_k": "3"}

    analyze = try_it_out(page, "operations-clip-clip_analyze_create")
    # The language is a choice: Swagger UI selects its first, English.
    assert form_values(analyze) == {
        "text": "red shoes", "threshold": "0.31", "category": "shoes", "language": "en"
    }
    analyze.locator("input[type=file]").set_input_files(
        files=[{"name": "photo.png", "mimeType": "image/png", "buffer": image_bytes()}]
    )
    analyze.locator("button.execute").click()
    body = analyze.locator(".live-responses-table .response-col_description pre.microlight").first
    body.wait_for()
    answer = json.loads(body.text_content())
    assert answer["threshold_used"] == 0.31
    assert answer["is_mismatch"] == (answer["similarity_score"] < 0.31)
