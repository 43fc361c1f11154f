"""Failures outside the input: the database, unhandled errors — still the one JSON format."""

import pytest
from django.db import OperationalError, connections
from django.test import Client
from rest_framework.test import APIClient

from tests.support.users import user_with_token


@pytest.fixture
def database_down(monkeypatch):
    """Every new query fails the way a refused or dropped connection does."""

    def refuse(self):
        raise OperationalError("connection to server at \"db\" (10.0.0.5), port 5432 failed: Connection refused")

    def set_down():
        monkeypatch.setattr(type(connections["default"]), "ensure_connection", refuse)

    return set_down


@pytest.mark.django_db
class TestDatabaseUnavailable:
    def test_token_authentication_answers_503_database_unavailable(self, database_down):
        _, token = user_with_token()
        database_down()
        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = client.get("/clip/categories")
        assert response.status_code == 503
        assert response.json() == {
            "error": {"code": "database_unavailable", "message": "The database is unavailable; retry shortly."}
        }
        assert response["Retry-After"] == "5"

    def test_inference_answers_503_when_its_verdict_cannot_be_stored(self, database_down, png_bytes):
        # Every analysis is stored: without the database none is answered.
        from django.core.files.uploadedfile import SimpleUploadedFile

        database_down()
        response = APIClient(raise_request_exception=False).post(
            "/clip/analyze",
            {"file": SimpleUploadedFile("a.png", png_bytes, content_type="image/png"), "text": "red"},
            format="multipart",
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"

    def test_pages_outside_the_api_answer_503_json_too(self, database_down):
        database_down()
        response = Client(raise_request_exception=False).post(
            "/admin/login/", {"username": "someone", "password": "x"}
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"


@pytest.mark.django_db
def test_an_unhandled_error_is_a_json_500(monkeypatch):
    from clipcheck.api import views

    def broken(self, request):
        raise ZeroDivisionError

    monkeypatch.setattr(views.CategoriesView, "get", broken)
    response = APIClient(raise_request_exception=False).get("/clip/categories")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"


def test_a_refused_csrf_check_outside_the_api_is_json():
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
