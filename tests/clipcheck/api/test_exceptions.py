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


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.django_db
def test_a_browser_gets_djangos_html_404_on_admin_pages_and_api_clients_get_json(admin_client):
    page = admin_client.get("/admin/listings/listing/999999/image/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
    assert b"Not Found" in page.content and b'"error"' not in page.content
    for accept in ("application/json", "*/*", None):
        extra = {"HTTP_ACCEPT": accept} if accept else {}
        answer = Client().get("/clip/no-such-endpoint", **extra)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


@pytest.mark.django_db(transaction=True)
def test_an_error_answer_rolls_back_the_requests_transaction(monkeypatch):
    from django.db import connection, transaction

    from clipcheck.api.exceptions import exception_handler
    from clipcheck.errors import ClipcheckError

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    with transaction.atomic():
        response = exception_handler(ClipcheckError("refused", code="refused", status_code=409), {})
        assert response.status_code == 409
        assert connection.needs_rollback  # what the view wrote before the error is not committed
