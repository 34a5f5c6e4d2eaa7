"""HMAC listeners: Standard Webhooks, GitHub and Stripe signatures, rotation, replay window."""
import base64
import hashlib
import hmac
import time

import pytest

from flows.models import Flow
from listeners.models import Listener, Message
from listeners.signatures import SignatureError, verify_signature

BODY = b'{"event": "invoice.paid", "id": 7}'
RAW_KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(RAW_KEY).decode()


def standard_headers(body: bytes, key: bytes = RAW_KEY, ts: int | None = None, msg_id: str = "msg_1") -> dict:
    ts = int(time.time()) if ts is None else ts
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"HTTP_WEBHOOK_ID": msg_id, "HTTP_WEBHOOK_TIMESTAMP": str(ts), "HTTP_WEBHOOK_SIGNATURE": f"v1,{sig}"}


def test_standard_signature_accepted_with_any_of_several_keys():
    other = "whsec_" + base64.b64encode(b"another-key-another-key-another!!").decode()
    verify_signature({"scheme": "standard"}, [other, WHSEC], standard_headers(BODY), BODY)


def test_standard_signature_over_a_changed_body_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature({"scheme": "standard"}, [WHSEC], standard_headers(BODY), BODY + b" ")


def test_standard_signature_outside_the_tolerance_window_is_refused():
    old = int(time.time()) - 301
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature({"scheme": "standard", "tolerance": 300}, [WHSEC], standard_headers(BODY, ts=old), BODY)


def test_missing_signature_headers_are_refused():
    with pytest.raises(SignatureError, match="missing"):
        verify_signature({"scheme": "standard"}, [WHSEC], {}, BODY)


def test_github_signature():
    secret = "gh-secret"
    good = "sha256=" + hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    verify_signature({"scheme": "github"}, [secret], {"HTTP_X_HUB_SIGNATURE_256": good}, BODY)
    with pytest.raises(SignatureError):
        verify_signature({"scheme": "github"}, ["wrong"], {"HTTP_X_HUB_SIGNATURE_256": good}, BODY)


def test_stripe_signature_and_its_replay_window():
    secret = "whsec_stripe_test"
    ts = int(time.time())
    v1 = hmac.new(secret.encode(), f"{ts}.".encode() + BODY, hashlib.sha256).hexdigest()
    verify_signature({"scheme": "stripe"}, [secret], {"HTTP_STRIPE_SIGNATURE": f"t={ts},v1={v1}"}, BODY)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature({"scheme": "stripe"}, [secret], {"HTTP_STRIPE_SIGNATURE": f"t={ts},v1={v1}"}, BODY, now=ts + 1000)


@pytest.fixture
def hmac_listener(user, json_format):
    listener = Listener(owner=user, name="billing", path="billing", mode="async", auth="hmac",
                        signature={"scheme": "standard", "tolerance": 300})
    listener.secrets = {"signing_keys": [WHSEC]}
    listener.save()
    Flow.objects.create(owner=user, name="billing", listener=listener, source_format=json_format,
                        mapping={"fields": [{"target": "id", "source": "id"}]}, destination_format=json_format)
    return listener


@pytest.mark.django_db
def test_hmac_listener_accepts_a_signed_payload(client, hmac_listener):
    response = client.post("/listen/billing", BODY, content_type="application/json", **standard_headers(BODY))
    assert response.status_code == 202
    message = Message.objects.get(pk=response.json()["message_id"])
    assert message.read_body() == BODY
    assert message.headers["Webhook-Signature"] == "***"


@pytest.mark.django_db
def test_hmac_listener_refuses_a_forged_payload_with_401_and_keeps_the_reason(client, hmac_listener):
    forged = standard_headers(BODY, key=b"not-the-key-not-the-key-not-the!")
    response = client.post("/listen/billing", BODY, content_type="application/json", **forged)
    assert response.status_code == 401
    assert "signature" in response.json()["error"]
    rejected = Message.objects.get(status=Message.Status.REJECTED)
    assert "does not match" in rejected.error


@pytest.mark.django_db
def test_hmac_listener_needs_signing_keys_through_the_api(api):
    response = api.post("/api/v1/listeners/", {"name": "x", "path": "x", "auth": "hmac"}, format="json")
    assert response.status_code == 400
    assert "signing_keys" in str(response.json()["secrets"])
    response = api.post("/api/v1/listeners/", {"name": "x", "path": "x", "auth": "hmac",
                                               "secrets": {"signing_keys": [WHSEC]}}, format="json")
    assert response.status_code == 201
    assert "secrets" not in response.json() and WHSEC not in response.content.decode()
