"""Rotating a subscription's signing secret: the new secret is answered once; during the grace period
deliveries carry a signature for the old and the new secret, so a receiver holding either verifies; after
it only the new one signs."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from events.models import Subscription
from flows.services import run_message
from listeners.models import Message
from listeners.signatures import SignatureError, verify_standard
from tests.conftest import token_for

pytestmark = pytest.mark.django_db


def run(flow, capture):
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/x", status="queued")
    message.store_body(b'{"id": 7, "name": {"family": "Doe"}}')
    message.save()
    with capture(execute=True):
        return run_message(message.pk)


def verifies(request, secret) -> bool:
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request["headers"].items()}
    try:
        verify_standard(meta, request["body"], [secret], tolerance=300, now=time.time())
    except SignatureError:
        return False
    return True


@pytest.fixture
def created(api, subscriber, async_flow):
    response = api.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.succeeded"],
                                                   "flows": [async_flow.pk]}, format="json")
    assert response.status_code == 201
    return response.json()


def test_either_secret_verifies_during_the_grace_period_and_only_the_new_one_after(
        api, created, subscriber, async_flow, settings, django_capture_on_commit_callbacks):
    old = created["secret"]
    rotated = api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.content
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    until = rotated.json()["previous_secret_expires_at"]
    grace = timezone.datetime.fromisoformat(until.replace("Z", "+00:00")) - timezone.now()
    assert abs(grace.total_seconds() - settings.PUSHFLOW_WEBHOOK_SECRET_GRACE_SECONDS) < 30

    run(async_flow, django_capture_on_commit_callbacks)
    during = subscriber.requests[-1]
    assert len(during["headers"]["webhook-signature"].split()) == 2
    assert verifies(during, old) and verifies(during, new)
    assert not verifies(during, "whsec_" + "A" * 32)

    # The grace period is over.
    Subscription.objects.filter(pk=created["id"]).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    run(async_flow, django_capture_on_commit_callbacks)
    after = subscriber.requests[-1]
    assert len(after["headers"]["webhook-signature"].split()) == 1
    assert verifies(after, new) and not verifies(after, old)


def test_the_new_secret_is_shown_once_and_never_logged(api, created):
    new = api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret").json()["secret"]
    stored = Subscription.objects.get(pk=created["id"])
    assert stored.secret == new and new not in stored.secret_encrypted and created["secret"] not in stored.secret_encrypted
    shown = api.get(f"/api/v1/subscriptions/{created['id']}/")
    assert new not in shown.content.decode() and shown.json()["previous_secret_expires_at"]
    entry = AuditEntry.objects.filter(object_type="subscription", action="update").get()
    assert "secret" in str(entry.changes) and new not in str(entry.changes)


def test_without_a_grace_period_only_the_new_secret_signs(api, created, subscriber, async_flow, settings,
                                                          django_capture_on_commit_callbacks):
    settings.PUSHFLOW_WEBHOOK_SECRET_GRACE_SECONDS = 0
    rotated = api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret").json()
    assert rotated["previous_secret_expires_at"] is None
    run(async_flow, django_capture_on_commit_callbacks)
    assert verifies(subscriber.requests[-1], rotated["secret"]) and not verifies(subscriber.requests[-1], created["secret"])


def test_a_second_rotation_drops_the_oldest_secret(api, created, subscriber, async_flow, django_capture_on_commit_callbacks):
    second = api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret").json()["secret"]
    third = api.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret").json()["secret"]
    run(async_flow, django_capture_on_commit_callbacks)
    request = subscriber.requests[-1]
    assert verifies(request, third) and verifies(request, second) and not verifies(request, created["secret"])


def test_only_the_owner_rotates(api, created, other_user):
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(other_user)}")
    assert stranger.post(f"/api/v1/subscriptions/{created['id']}/rotate-secret").status_code == 404
    assert api.post("/api/v1/subscriptions/999999/rotate-secret").status_code == 404
    assert api.get(f"/api/v1/subscriptions/{created['id']}/rotate-secret").status_code == 405
    assert Subscription.objects.get(pk=created["id"]).secret == created["secret"]
