"""Request telemetry (one JSON log line per request) and the request size limit."""

import json
import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.support.images import image_bytes


def request_log_lines(caplog):
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "clipcheck.requests"]


@pytest.fixture
def request_log(caplog):
    caplog.set_level(logging.INFO, logger="clipcheck.requests")
    # The logger does not propagate to the root (its own stdout handler);
    # caplog listens on the root.
    logger = logging.getLogger("clipcheck.requests")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.django_db
class TestRequestTelemetry:
    def test_each_request_logs_one_json_line(self, request_log):
        upload = SimpleUploadedFile("a.png", image_bytes(), content_type="image/png")
        response = APIClient().post("/clip/analyze", {"file": upload, "text": "red"}, format="multipart")
        assert response.status_code == 200
        [line] = request_log_lines(request_log)
        assert line["method"] == "POST"
        assert line["path"] == "/clip/analyze"
        assert line["endpoint"] == "clipcheck:analyze"
        assert line["status"] == 200
        assert line["duration_ms"] >= line["model_ms"] > 0
        assert line["request_id"] == response["X-Request-ID"]

    def test_requests_without_model_work_log_zero_model_time(self, request_log):
        APIClient().get("/clip/categories")
        APIClient().get("/no/such/page")
        lines = request_log_lines(request_log)
        assert [(line["endpoint"], line["status"], line["model_ms"]) for line in lines] == [
            ("clipcheck:categories", 200, 0.0),
            ("unmatched", 404, 0.0),
        ]

    def test_a_plain_caller_request_id_is_echoed_and_a_hostile_one_replaced(self, request_log):
        kept = APIClient().get("/clip/categories", HTTP_X_REQUEST_ID="lb-1234.abc")
        replaced = APIClient().get("/clip/categories", HTTP_X_REQUEST_ID='x"\n{"status": 200}')
        assert kept["X-Request-ID"] == "lb-1234.abc"
        assert len(replaced["X-Request-ID"]) == 32 and "\n" not in replaced["X-Request-ID"]
        assert [line["request_id"] for line in request_log_lines(request_log)] == [
            "lb-1234.abc", replaced["X-Request-ID"]
        ]

    def test_refused_requests_are_logged_too(self, request_log, settings):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_REQUEST_BYTES": 100}
        APIClient().post("/clip/analyze", {"text": "x" * 200})
        [line] = request_log_lines(request_log)
        assert line["status"] == 413


class TestRequestSizeLimit:
    def test_a_body_over_the_limit_is_refused_from_its_content_length(self, settings, client):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_REQUEST_BYTES": 1000}
        response = client.post("/clip/analyze-batch", {"items": ["a" * 2000]}, content_type="application/json")
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert "1000" in response.json()["error"]["message"]

    def test_a_body_at_the_limit_is_let_through(self, settings, client):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_REQUEST_BYTES": 20}
        response = client.post("/clip/analyze-batch", b'{"items": []}', content_type="application/json")
        assert response.status_code == 401  # reached the view's access check

    def test_requests_without_a_body_pass(self, settings, client):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MAX_REQUEST_BYTES": 1}
        assert client.get("/clip/categories").status_code == 200
