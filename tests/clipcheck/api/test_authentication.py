"""Failed token authentication is throttled per client; CSRF refusals say csrf_failed."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.support.clip_settings import set_clip_settings
from tests.support.images import image_bytes
from tests.support.users import user_with_token

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def still_clock(monkeypatch):
    """20 s into a minute, however long the test takes: one throttle window."""
    from clipcheck.api import authentication

    monkeypatch.setattr(authentication, "clock", lambda: 1_800_000_020.0)


def categories(client, token, address="203.0.113.7"):
    return client.get("/clip/categories", HTTP_AUTHORIZATION=f"Token {token}", REMOTE_ADDR=address)


def test_failed_tokens_are_throttled_per_client(settings):
    set_clip_settings(settings, FAILED_AUTH_RATE="5/minute")
    client = APIClient()
    statuses = [categories(client, f"wrong-{index:02d}").status_code for index in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    throttled = categories(client, "wrong-again")
    assert throttled.json()["error"]["code"] == "throttled"
    assert throttled["Retry-After"] == "40"  # the rest of the minute
    # Once throttled, even a valid token from that client waits: guessing gains nothing.
    _, token = user_with_token()
    assert categories(client, token).status_code == 429
    # Other clients are not affected, and anonymous calls are not counted.
    assert categories(client, token, address="198.51.100.1").status_code == 200
    assert client.get("/clip/categories", REMOTE_ADDR="203.0.113.7").status_code == 200


def test_successful_tokens_are_not_counted(settings):
    set_clip_settings(settings, FAILED_AUTH_RATE="2/minute")
    _, token = user_with_token()
    client = APIClient()
    assert [categories(client, token).status_code for _ in range(5)] == [200] * 5


def test_failed_token_throttling_can_be_turned_off(settings):
    set_clip_settings(settings, FAILED_AUTH_RATE=None)
    client = APIClient()
    assert {categories(client, f"wrong-{index}").status_code for index in range(25)} == {401}


def test_a_session_post_without_a_csrf_token_is_csrf_failed(django_user_model):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user(username="seller"))
    response = client.post("/clip/analyze", {"text": "red", "file": image_bytes()}, format="multipart")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert "CSRF" in response.json()["error"]["message"]


def test_a_form_post_without_a_csrf_token_is_csrf_failed():
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


def test_post_to_metrics_is_405_even_with_csrf_checks():
    response = Client(enforce_csrf_checks=True).post("/metrics", {})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
