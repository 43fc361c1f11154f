"""Prometheus metrics at /metrics."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from clipcheck.engine import get_engine, reset_engine
from tests.support.images import image_bytes


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
class TestMetrics:
    def test_requests_are_counted_and_timed_per_endpoint(self, client):
        before = scrape(client)
        APIClient().get("/clip/categories")
        APIClient().get("/clip/categories")
        after = scrape(client)
        labels = {"endpoint": "clipcheck:categories", "method": "GET"}
        assert value(after, "clipcheck_http_requests_total", status="200", **labels) - value(
            before, "clipcheck_http_requests_total", status="200", **labels
        ) == 2
        assert value(after, "clipcheck_http_request_duration_seconds_count", **labels) - value(
            before, "clipcheck_http_request_duration_seconds_count", **labels
        ) == 2

    def test_unknown_methods_share_one_label(self, client):
        client.generic("BREW", "/clip/categories")
        samples = scrape(client)
        assert value(samples, "clipcheck_http_requests_total", endpoint="clipcheck:categories", method="other",
                     status="405") >= 1
        assert not any(dict(labels).get("method") == "BREW" for _, labels in samples)

    def test_inference_batch_sizes_and_model_state(self, client):
        get_engine()
        before = scrape(client)
        upload = SimpleUploadedFile("a.png", image_bytes(), content_type="image/png")
        APIClient().post("/clip/classify", {"file": upload, "categories": "a,b,c"}, format="multipart")
        after = scrape(client)
        assert value(after, "clipcheck_model_loaded") == 1
        assert value(after, "clipcheck_inference_batch_size_sum", kind="image") - value(
            before, "clipcheck_inference_batch_size_sum", kind="image") == 1
        # The three prompts go through the text encoder together (unless cached).
        text_batch = value(after, "clipcheck_inference_batch_size_sum", kind="text") - value(
            before, "clipcheck_inference_batch_size_sum", kind="text")
        assert text_batch in (0, 3)
        assert value(after, "clipcheck_inference_queue_depth") == 0

    def test_a_failed_model_load_shows_in_the_gauge(self, client, settings, tmp_path):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "MODEL": str(tmp_path / "missing")}
        reset_engine()
        try:
            assert APIClient().get("/clip/health").status_code == 503
            samples = scrape(client)
            assert value(samples, "clipcheck_model_loaded") == 0
            assert value(samples, "clipcheck_model_load_failures_total") >= 1
        finally:
            reset_engine()

    def test_a_metrics_token_is_required_when_configured(self, client, settings):
        settings.CLIPCHECK = {**settings.CLIPCHECK, "METRICS_TOKEN": "s3cret"}
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "not_authenticated"
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        scrape(client, HTTP_AUTHORIZATION="Bearer s3cret")

    def test_only_get_is_allowed(self, client):
        response = client.post("/metrics")
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
