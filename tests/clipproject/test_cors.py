"""Cross-origin browser clients: allowed origins only, and the headers they need are readable."""

import re
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from clipcheck.middleware import REQUEST_ID_HEADER
from tests.support.server import REPO_ROOT

SHOP = "https://shop.example"

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [SHOP]


def exposed(response):
    return {name.strip().lower() for name in response["Access-Control-Expose-Headers"].split(",")}


def test_a_throttled_browser_client_can_read_retry_after(shop_origin, settings):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"categories": {"rate": "1/minute"}}}
    client = APIClient()
    assert client.get("/clip/categories", HTTP_ORIGIN=SHOP).status_code == 200
    throttled = client.get("/clip/categories", HTTP_ORIGIN=SHOP)
    assert throttled.status_code == 429
    assert throttled["Access-Control-Allow-Origin"] == SHOP
    assert int(throttled["Retry-After"]) > 0
    assert {"retry-after", REQUEST_ID_HEADER.lower()} <= exposed(throttled)


def test_a_preflight_from_the_shop_allows_the_multipart_post(shop_origin):
    preflight = APIClient().options(
        "/clip/analyze", HTTP_ORIGIN=SHOP, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == SHOP
    assert "POST" in preflight["Access-Control-Allow-Methods"]


def test_other_origins_get_no_cors_headers(shop_origin):
    response = APIClient().get("/clip/categories", HTTP_ORIGIN="https://elsewhere.example")
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Expose-Headers" not in response


def test_the_demo_docs_let_a_local_storefront_page_call_the_api_as_written(settings, monkeypatch):
    """docs/demo.md: the page's origin exactly, through the environment variable the settings read."""
    from corsheaders.checks import check_settings

    from clipproject.settings import env_list

    text = (REPO_ROOT / "docs" / "demo.md").read_text()
    allowed = re.search(r"^CORS_ALLOWED_ORIGINS=(\S+) \.venv/bin/python manage\.py clip_demo$", text, re.M).group(1)
    page = re.search(r"# open (http://\S+)", text).group(1)
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", allowed)
    settings.CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
    assert check_settings() == []
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page))  # what the browser sends
    preflight = APIClient().options(
        "/clip/analyze", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert preflight["Access-Control-Allow-Origin"] == origin
    # Exactly: the same page opened as localhost is another origin.
    other = APIClient().options(
        "/clip/analyze", HTTP_ORIGIN=origin.replace("127.0.0.1", "localhost"), HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
    )
    assert "Access-Control-Allow-Origin" not in other
