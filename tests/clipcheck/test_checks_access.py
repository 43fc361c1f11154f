"""System checks of the hardening settings (clipcheck.E011-E015, W002, W003)."""

import pytest
from django.urls import path

from clipcheck.checks import check_access_scopes, check_clipcheck_settings, check_shared_throttle_cache


def check_ids(settings, **overrides):
    settings.CLIPCHECK = {**settings.CLIPCHECK, **overrides}
    return sorted({message.id for message in check_clipcheck_settings()})


def test_defaults_pass(settings):
    assert check_ids(settings) == []


@pytest.mark.parametrize("access", [
    {"analyze": "open"},
    {"analyze": {"anonymus": True}},
    {"analyze": {"anonymous": "yes"}},
    {"analyze": {"permissions": "clipcheck.run_batch_analysis"}},
    {"analyze": {"permissions": ["run_batch_analysis"]}},
    {"analyze": {"rate": "60 per minute"}},
    {"analyze": {"rate": "0/minute"}},
    {"analyze": {"user_rate": "10/fortnight"}},
    ["analyze"],
])
def test_malformed_access_policies_are_errors(settings, access):
    assert check_ids(settings, ACCESS=access) == ["clipcheck.E011"]


def test_a_valid_project_policy_passes(settings):
    access = {"analyze": {"rate": "5/second", "user_rate": "100/hour"}, "upload": {"anonymous": False}}
    assert check_ids(settings, ACCESS=access) == []


@pytest.mark.parametrize("key,value", [
    ("QUEUE_TIMEOUT_MS", -1), ("INFERENCE_TIMEOUT_SECONDS", 0), ("LOAD_RETRY_SECONDS", "soon"),
    ("MAX_ASPECT_RATIO", 0.5),
])
def test_bad_timings_and_ratios_are_errors(settings, key, value):
    assert check_ids(settings, **{key: value}) == ["clipcheck.E014"]


@pytest.mark.parametrize("key,value", [("MAX_QUEUE", 0), ("MAX_REQUEST_BYTES", "12MB")])
def test_limits_must_be_positive_integers(settings, key, value):
    assert check_ids(settings, **{key: value}) == ["clipcheck.E004"]


def test_the_throttle_cache_must_exist(settings):
    assert check_ids(settings, THROTTLE_CACHE="throttles") == ["clipcheck.E013"]


def test_an_empty_metrics_token_is_an_error(settings):
    assert check_ids(settings, METRICS_TOKEN=" ") == ["clipcheck.E015"]


def test_a_request_limit_below_the_file_limit_is_a_warning(settings):
    assert check_ids(settings, MAX_REQUEST_BYTES=1000, MAX_UPLOAD_BYTES=2000) == ["clipcheck.W002"]


def test_a_process_local_throttle_cache_is_a_deploy_warning(settings):
    assert [message.id for message in check_shared_throttle_cache()] == ["clipcheck.W003"]
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://x:6379/0"}}
    assert check_shared_throttle_cache() == []


def test_routed_views_need_a_policy(settings):
    from rest_framework.views import APIView

    from clipcheck.api.views import CategoriesView

    class NoScopeView(APIView):
        pass

    class UnknownScopeView(APIView):
        access_scope = "no-such-scope"

    urlconf = type("urlconf", (), {"urlpatterns": [
        path("ok", CategoriesView.as_view()),
        path("no-scope", NoScopeView.as_view()),
        path("unknown", UnknownScopeView.as_view()),
    ]})
    settings.ROOT_URLCONF = urlconf
    messages = check_access_scopes()
    assert [message.id for message in messages] == ["clipcheck.E012", "clipcheck.E012"]
    assert "'no-scope'" in messages[0].msg and "'unknown'" in messages[1].msg

    settings.CLIPCHECK = {**settings.CLIPCHECK, "ACCESS": {"no-such-scope": {"anonymous": False}}}
    assert len(check_access_scopes()) == 1


def test_the_project_urls_pass(settings):
    assert check_access_scopes() == []
