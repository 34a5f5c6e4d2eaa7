"""POST /api/v1/token and how tokens and Basic credentials authenticate API calls."""
import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_and_password_give_an_expiring_token_stored_hashed(user):
    response = APIClient().post("/api/v1/token", {"login": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    raw = response.json()["token"]
    assert response.json()["expires_at"]
    stored = ApiToken.objects.get(user=user)
    assert raw not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
    assert stored.expires_at > timezone.now() + timedelta(hours=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/formats/").status_code == 200


def test_wrong_password_is_401(user):
    response = APIClient().post("/api/v1/token", {"login": user.username, "password": "nope"}, format="json")
    assert response.status_code == 401
    assert "wrong login or password" in response.json()["detail"]


def test_missing_fields_are_400_naming_them():
    response = APIClient().post("/api/v1/token", {"login": "x"}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()


def test_inactive_user_gets_no_token(user):
    user.is_active = False
    user.save()
    response = APIClient().post("/api/v1/token", {"login": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 401


def test_expired_token_is_refused(user):
    token, raw = ApiToken.issue(user, 3600)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.get("/api/v1/formats/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_basic_auth_works_on_the_api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode())
    assert client.get("/api/v1/listeners/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{user.username}:bad".encode()).decode())
    assert client.get("/api/v1/listeners/").status_code == 401


def test_unauthenticated_api_calls_are_401():
    assert APIClient().get("/api/v1/flows/").status_code == 401


def test_a_checked_token_is_trusted_only_for_the_cache_time(user, settings):
    import time

    from accounts.authentication import user_for_token

    settings.PUSHFLOW_TOKEN_CACHE_SECONDS = 0.2
    _, raw = ApiToken.issue(user, 3600)
    assert user_for_token(raw) == user
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    time.sleep(0.25)
    assert user_for_token(raw) is None


def test_a_token_is_never_trusted_past_its_expiry(user, settings):
    import time

    from accounts.authentication import user_for_token

    settings.PUSHFLOW_TOKEN_CACHE_SECONDS = 60
    token, raw = ApiToken.issue(user, 1)
    assert user_for_token(raw) == user
    time.sleep(1.1)
    assert user_for_token(raw) is None
