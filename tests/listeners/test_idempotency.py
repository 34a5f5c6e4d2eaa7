"""Idempotency at the door: a repeated Idempotency-Key or webhook-id gets the first receipt and runs nothing new."""
import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from flows.models import FlowRun
from listeners.models import Message
from tests.conftest import PASSWORD, token_for

pytestmark = pytest.mark.django_db(transaction=True)
BODY = json.dumps({"id": 1, "name": {"family": "Once"}})


def test_a_repeated_key_gets_the_first_receipt_and_one_run(client, user, async_flow):
    auth = f"Bearer {token_for(user)}"
    first = client.post("/listen/patients", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth,
                        HTTP_IDEMPOTENCY_KEY="order-77")
    again = client.post("/listen/patients", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth,
                        HTTP_IDEMPOTENCY_KEY="order-77")
    assert first.status_code == again.status_code == 202
    assert again.json()["message_id"] == first.json()["message_id"]
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1 and FlowRun.objects.count() == 1
    other = client.post("/listen/patients", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth,
                        HTTP_IDEMPOTENCY_KEY="order-78")
    assert other.json()["message_id"] != first.json()["message_id"]


def test_a_repeated_key_on_a_sync_listener_replays_the_answer(client, user, sync_flow):
    auth = "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    first = client.post("/listen/echo", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth, HTTP_WEBHOOK_ID="msg_1")
    again = client.post("/listen/echo", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth, HTTP_WEBHOOK_ID="msg_1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {"full": "Once"}
    assert again["X-Message-Id"] == first["X-Message-Id"]
    assert FlowRun.objects.count() == 1


def test_a_refused_request_does_not_claim_the_key(client, user, async_flow):
    refused = client.post("/listen/patients", BODY, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert refused.status_code == 401
    accepted = client.post("/listen/patients", BODY, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token_for(user)}", HTTP_IDEMPOTENCY_KEY="k-1")
    assert accepted.status_code == 202 and "Idempotent-Replayed" not in accepted


def test_concurrent_duplicates_store_one_message(user, async_flow):
    auth = f"Bearer {token_for(user)}"

    def push(_):
        try:
            return Client().post("/listen/patients", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth,
                                 HTTP_IDEMPOTENCY_KEY="burst").json()["message_id"]
        finally:
            connection.close()  # this thread's own connection, or the test database could not be dropped

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(push, range(12)))
    assert len(ids) == 1
    assert Message.objects.filter(idempotency_key="burst").count() == 1


def test_a_body_repeated_within_the_dedupe_window_gets_the_first_receipt(client, user, async_flow):
    from datetime import timedelta

    from django.utils import timezone

    from listeners.models import Listener

    Listener.objects.filter(pk=async_flow.listener_id).update(dedupe_window_seconds=60)
    auth = f"Bearer {token_for(user)}"
    first = client.post("/listen/patients", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth)
    again = client.post("/listen/patients", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert again.json()["message_id"] == first.json()["message_id"] and again["Idempotent-Replayed"] == "true"
    other = client.post("/listen/patients", BODY.replace("Once", "Twice"), content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert other.json()["message_id"] != first.json()["message_id"]
    Message.objects.filter(pk=first.json()["message_id"]).update(received_at=timezone.now() - timedelta(seconds=120))
    later = client.post("/listen/patients", BODY, content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert later.json()["message_id"] != first.json()["message_id"]  # outside the window: a new message
    assert Message.objects.count() == 3 and FlowRun.objects.count() == 3
