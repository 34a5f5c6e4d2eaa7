"""Login lockout: repeated wrong passwords lock the account name for a while, everywhere."""
import base64

import pytest
from rest_framework.test import APIClient

from listeners.models import Listener
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def strict(settings):
    settings.PUSHFLOW_LOCKOUT_FAILURES = 3
    settings.PUSHFLOW_LOCKOUT_SECONDS = 600


def fail(user, times):
    for _ in range(times):
        assert APIClient().post("/api/v1/token", {"login": user.username, "password": "wrong"}, format="json").status_code == 401


def test_the_right_password_is_refused_once_locked_and_the_reason_is_said(user):
    fail(user, 3)
    response = APIClient().post("/api/v1/token", {"login": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert "too many failed logins" in response.json()["detail"]


def test_below_the_threshold_a_success_clears_the_count(client, user, other_user):
    fail(user, 2)
    assert client.login(username=user.username, password=PASSWORD)
    fail(user, 2)
    assert APIClient().post("/api/v1/token", {"login": user.username, "password": PASSWORD}, format="json").status_code == 200
    fail(other_user, 3)  # another name's lock does not touch this one
    assert APIClient().post("/api/v1/token", {"login": user.username, "password": PASSWORD}, format="json").status_code == 200


def test_the_login_page_tells_a_locked_out_person(client, user):
    fail(user, 3)
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200
    assert b"too many failed logins" in response.content
    assert "_auth_user_id" not in client.session


def test_basic_auth_on_a_listener_is_refused_while_locked(client, user):
    Listener.objects.create(owner=user, name="b", path="b", auth="basic")
    fail(user, 3)
    good = "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    assert client.post("/listen/b", b"{}", content_type="application/json", HTTP_AUTHORIZATION=good).status_code == 401
