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
