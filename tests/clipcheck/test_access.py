"""Who may call which endpoint, and how often (clipcheck.access)."""

import subprocess
import sys
import textwrap
import uuid

import pytest
from rest_framework.test import APIClient

from clipcheck.access import EndpointRateThrottle
from tests.support.images import image_bytes
from tests.support.users import user_with_token

REDIS_URL = "redis://127.0.0.1:6379/7"


@pytest.fixture
def anonymous_api_client():
    return APIClient()


@pytest.fixture
def redis_cache(settings):
    """Throttle counters in the real Redis, under a key prefix of this test's own."""
    prefix = f"clipcheck-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": prefix}
    }
    yield settings.CACHES
    from django.core.cache import caches

    caches["default"].delete_pattern("*")


def set_policy(settings, scope, **policy):
    settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {scope: policy}}


def batch_body(batch_root):
    (batch_root / "red.png").write_bytes(image_bytes())
    return {"items": [{"image_path": "red.png", "text": "a red square"}]}


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code


@pytest.mark.django_db
class TestBatchPermission:
    def test_anonymous_client_gets_401_naming_the_token_scheme(self, anonymous_api_client, batch_root):
        response = anonymous_api_client.post("/clip/analyze-batch", batch_body(batch_root), format="json")
        assert_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == "Token"

    def test_unknown_token_gets_401(self, anonymous_api_client, batch_root):
        anonymous_api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
        response = anonymous_api_client.post("/clip/analyze-batch", batch_body(batch_root), format="json")
        assert_error(response, 401, "authentication_failed")
        assert response["WWW-Authenticate"] == "Token"

    def test_user_without_the_permission_gets_403(self, anonymous_api_client, batch_root):
        _, token = user_with_token()
        anonymous_api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = anonymous_api_client.post("/clip/analyze-batch", batch_body(batch_root), format="json")
        assert_error(response, 403, "permission_denied")

    def test_user_with_the_permission_runs_the_batch(self, anonymous_api_client, batch_root):
        _, token = user_with_token(permissions=["clipcheck.run_batch_analysis"])
        anonymous_api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = anonymous_api_client.post("/clip/analyze-batch", batch_body(batch_root), format="json")
        assert response.status_code == 200, response.content
        assert response.json()["results"][0]["image_path"] == "red.png"
        assert "similarity_score" in response.json()["results"][0]

    def test_session_user_with_the_permission_runs_the_batch(self, anonymous_api_client, batch_root):
        user, _ = user_with_token(permissions=["clipcheck.run_batch_analysis"])
        anonymous_api_client.force_login(user)
        response = anonymous_api_client.post("/clip/analyze-batch", batch_body(batch_root), format="json")
        assert response.status_code == 200, response.content

    def test_session_request_without_csrf_token_gets_403(self, batch_root):
        user, _ = user_with_token(permissions=["clipcheck.run_batch_analysis"])
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(user)
        response = client.post("/clip/analyze-batch", batch_body(batch_root), format="json")
        assert_error(response, 403, "csrf_failed")
        assert "CSRF" in response.json()["error"]["message"]


@pytest.mark.django_db
class TestPolicyTable:
    def test_open_endpoints_serve_anonymous_clients(self, anonymous_api_client):
        assert anonymous_api_client.get("/clip/categories").status_code == 200
        assert anonymous_api_client.get("/clip/health").status_code == 200
        response = anonymous_api_client.post("/clip/analyze", {"file": _upload(), "text": "red"}, format="multipart")
        assert response.status_code == 200, response.content

    def test_a_project_can_close_an_open_endpoint(self, anonymous_api_client, settings):
        set_policy(settings, "categories", anonymous=False)
        assert_error(anonymous_api_client.get("/clip/categories"), 401, "not_authenticated")
        _, token = user_with_token()
        anonymous_api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert anonymous_api_client.get("/clip/categories").status_code == 200

    def test_a_project_override_keeps_the_other_defaults_of_the_scope(self, anonymous_api_client, settings):
        set_policy(settings, "analyze-batch", rate="1000/minute")
        from clipcheck.access import access_table

        assert access_table()["analyze-batch"]["permissions"] == ["clipcheck.run_batch_analysis"]
        assert access_table()["analyze-batch"]["anonymous"] is False
        assert access_table()["analyze"]["rate"] == "60/minute"

    def test_a_view_without_a_policy_is_refused(self, settings, monkeypatch):
        from clipcheck.access import view_policy
        from clipcheck.api.views import CategoriesView

        monkeypatch.setattr(CategoriesView, "access_scope", "no-such-scope")
        assert view_policy(CategoriesView()) is None
        assert_error(APIClient().get("/clip/categories"), 401, "not_authenticated")
        _, token = user_with_token()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert_error(client.get("/clip/categories"), 403, "permission_denied")

    def test_a_view_without_a_scope_is_not_throttled_by_the_policy_throttle(self, settings):
        from rest_framework.test import APIRequestFactory
        from rest_framework.views import APIView

        request = APIRequestFactory().get("/")
        request.user = None
        assert EndpointRateThrottle().allow_request(request, APIView()) is True


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("red.png", image_bytes(), content_type="image/png")


@pytest.mark.django_db
class TestThrottling:
    def test_the_request_over_the_rate_gets_429_with_retry_after(self, anonymous_api_client, settings, monkeypatch):
        # Counts go per fixed window; 20 s into a minute, the window ends in 40 s.
        monkeypatch.setattr(EndpointRateThrottle, "timer", lambda self: 1_800_000_000.0 + 20)
        set_policy(settings, "categories", rate="3/minute")
        statuses = [anonymous_api_client.get("/clip/categories").status_code for _ in range(3)]
        response = anonymous_api_client.get("/clip/categories")
        assert statuses == [200, 200, 200]
        assert_error(response, 429, "throttled")
        assert response["Retry-After"] == "40"

    def test_a_new_window_starts_a_new_count(self, anonymous_api_client, settings, monkeypatch):
        now = [1_800_000_000.0 + 59]
        monkeypatch.setattr(EndpointRateThrottle, "timer", lambda self: now[0])
        set_policy(settings, "categories", rate="1/minute")
        assert anonymous_api_client.get("/clip/categories").status_code == 200
        assert anonymous_api_client.get("/clip/categories").status_code == 429
        now[0] += 1
        assert anonymous_api_client.get("/clip/categories").status_code == 200

    def test_clients_are_counted_by_address(self, anonymous_api_client, settings):
        set_policy(settings, "categories", rate="1/day")
        assert anonymous_api_client.get("/clip/categories", REMOTE_ADDR="10.0.0.1").status_code == 200
        assert anonymous_api_client.get("/clip/categories", REMOTE_ADDR="10.0.0.1").status_code == 429
        assert anonymous_api_client.get("/clip/categories", REMOTE_ADDR="10.0.0.2").status_code == 200

    def test_a_forged_forwarded_for_header_does_not_reset_the_count(self, anonymous_api_client, settings):
        set_policy(settings, "categories", rate="1/day")
        assert anonymous_api_client.get("/clip/categories", HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 200
        assert anonymous_api_client.get("/clip/categories", HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 429

    def test_users_are_counted_by_account_at_their_own_rate(self, anonymous_api_client, settings):
        set_policy(settings, "categories", rate="1/day", user_rate="2/day")
        _, token = user_with_token()
        assert anonymous_api_client.get("/clip/categories").status_code == 200
        assert anonymous_api_client.get("/clip/categories").status_code == 429
        anonymous_api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert [anonymous_api_client.get("/clip/categories").status_code for _ in range(3)] == [200, 200, 429]

    def test_scopes_are_counted_separately(self, anonymous_api_client, settings):
        settings.CLIPCHECK = {
            **settings.CLIPCHECK,
            "ACCESS": {"categories": {"rate": "1/day"}, "health": {"rate": "1/day"}},
        }
        assert anonymous_api_client.get("/clip/categories").status_code == 200
        assert anonymous_api_client.get("/clip/health").status_code == 200
        assert anonymous_api_client.get("/clip/categories").status_code == 429

    def test_no_rate_means_no_limit(self, anonymous_api_client, settings):
        set_policy(settings, "categories", rate=None)
        assert {anonymous_api_client.get("/clip/categories").status_code for _ in range(20)} == {200}

    def test_an_unreachable_counter_store_lets_requests_through(self, anonymous_api_client, settings):
        set_policy(settings, "categories", rate="1/day")
        settings.CACHES = {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": "redis://127.0.0.1:1/0",
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5},
            }
        }
        assert [anonymous_api_client.get("/clip/categories").status_code for _ in range(2)] == [200, 200]


@pytest.mark.django_db
@pytest.mark.redis
class TestThrottlingInRedis:
    def test_redis_counts_the_rate(self, anonymous_api_client, settings, redis_cache):
        set_policy(settings, "categories", rate="2/day")
        assert [anonymous_api_client.get("/clip/categories").status_code for _ in range(3)] == [200, 200, 429]

    def test_the_count_is_shared_with_another_process(self, anonymous_api_client, settings, redis_cache):
        """Two requests from another Python process (as from another gunicorn
        worker) use up the budget this process then finds spent."""
        set_policy(settings, "categories", rate="3/day")
        assert anonymous_api_client.get("/clip/categories").status_code == 200
        other_process = textwrap.dedent(f"""
            import django, os
            os.environ["DJANGO_SETTINGS_MODULE"] = "clipproject.settings"
            django.setup()
            from django.test.utils import override_settings
            from rest_framework.test import APIClient
            with override_settings(
                CACHES={redis_cache!r},
                CLIPCHECK={{"ACCESS": {{"categories": {{"rate": "3/day"}}}}}},
                ALLOWED_HOSTS=["testserver"],
            ):
                print([APIClient().get("/clip/categories").status_code for _ in range(2)])
        """)
        result = subprocess.run(
            [sys.executable, "-c", other_process], capture_output=True, text=True, timeout=60, check=True
        )
        assert result.stdout.strip().splitlines()[-1] == "[200, 200]"
        assert_error(anonymous_api_client.get("/clip/categories"), 429, "throttled")
