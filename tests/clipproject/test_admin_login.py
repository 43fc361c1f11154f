"""The admin's login: where it leads (a tampered next included)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "staff-password-1"


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("staff", password=PASSWORD, is_staff=True)


def log_in(client, username, password, *, next_url=None, address="203.0.113.9"):
    query = f"?next={next_url}" if next_url else ""
    data = {"username": username, "password": password, **({"next": next_url} if next_url else {})}
    return client.post(f"/admin/login/{query}", data, REMOTE_ADDR=address)


@pytest.mark.parametrize("next_url", [None, "https://attacker.example/", "//attacker.example/admin/"],
                         ids=["no next", "another site", "scheme-relative"])
def test_a_login_without_a_safe_next_lands_on_the_admin_index(staff, next_url):
    # Django's fallback, /accounts/profile/, is not routed: it answered 404 after a successful login.
    client = Client()
    response = log_in(client, "staff", PASSWORD, next_url=next_url)

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get(response["Location"]).status_code == 200


def test_a_login_with_a_safe_next_goes_there(staff):
    response = log_in(Client(), "staff", PASSWORD, next_url="/admin/listings/listing/")
    assert response.status_code == 302 and response["Location"] == "/admin/listings/listing/"


# Wrong passwords: throttled per username and per address (round-3 attack finding 11).

THROTTLED = "Too many failed logins for this account or from this address."


@pytest.fixture
def clock(monkeypatch):
    """The throttle windows' clock, held still (20 s into an hour) until a test moves it."""
    from clipcheck.api import authentication

    now = [1_800_000_020.0]
    monkeypatch.setattr(authentication, "clock", lambda: now[0])
    return now


def logged_in(client):
    return "_auth_user_id" in client.session


def test_wrong_passwords_for_one_account_lock_it_even_against_the_right_one(staff, clock, settings):
    from tests.support.clip_settings import set_clip_settings

    set_clip_settings(settings, FAILED_LOGIN_RATE_PER_USERNAME="10/hour", FAILED_LOGIN_RATE_PER_ADDRESS="30/hour")
    # 30 wrong passwords in a row, from addresses spread over the internet, then the right one.
    answers = [log_in(Client(), "staff", f"guess-{index}", address=f"198.51.100.{index}") for index in range(30)]

    assert all(answer.status_code == 200 for answer in answers)
    assert [THROTTLED in answer.content.decode() for answer in answers] == [False] * 10 + [True] * 20
    client = Client()
    refused = log_in(client, "staff", PASSWORD, address="192.0.2.1")
    assert refused.status_code == 200 and not logged_in(client)
    assert THROTTLED in refused.content.decode() and "Try again in 60 minute(s)." in refused.content.decode()
    # Another account is not affected; the window ends and the right password works again.
    get_user_model().objects.create_user("other", password=PASSWORD, is_staff=True)
    assert log_in(Client(), "other", PASSWORD, address="192.0.2.1").status_code == 302
    clock[0] += 3600
    assert log_in(client, "staff", PASSWORD, address="192.0.2.1").status_code == 302 and logged_in(client)


def test_one_address_trying_many_accounts_is_stopped(staff, clock, settings):
    from tests.support.clip_settings import set_clip_settings

    set_clip_settings(settings, FAILED_LOGIN_RATE_PER_USERNAME="10/hour", FAILED_LOGIN_RATE_PER_ADDRESS="5/hour")
    for index in range(5):
        assert THROTTLED not in log_in(Client(), f"user{index}", "guess", address="203.0.113.50").content.decode()

    assert THROTTLED in log_in(Client(), "staff", PASSWORD, address="203.0.113.50").content.decode()
    assert log_in(Client(), "staff", PASSWORD, address="203.0.113.51").status_code == 302


def test_the_default_limits_hold_and_none_turns_them_off(staff, clock, settings):
    from tests.support.clip_settings import set_clip_settings

    for index in range(10):
        log_in(Client(), "staff", f"guess-{index}", address=f"198.51.100.{index}")
    assert THROTTLED in log_in(Client(), "staff", PASSWORD).content.decode()

    set_clip_settings(settings, FAILED_LOGIN_RATE_PER_USERNAME=None, FAILED_LOGIN_RATE_PER_ADDRESS=None)
    for index in range(40):
        log_in(Client(), "staff", f"guess-{index}")
    assert log_in(Client(), "staff", PASSWORD).status_code == 302

