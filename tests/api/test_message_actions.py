"""Message actions: cancel, edit-then-resubmit (a new message linked to the original, with who),
bulk resubmit of a filtered set, and the per-flow retry policy."""
import json

import pytest

from connections.models import Connection
from flows.models import Flow
from flows.services import retry_delay, run_message
from listeners.models import Message
from tests.conftest import token_for
from tests.e2e.process import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def push(client, user, body: dict) -> str:
    answer = client.post("/listen/patients", json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert answer.status_code == 202
    return answer.json()["message_id"]


def test_cancel_a_waiting_message_but_not_a_finished_one(api, client, user, async_flow):
    Flow.objects.filter(pk=async_flow.pk).update(trigger="manual")
    waiting = push(client, user, {"id": 1, "name": {"family": "Wait"}})
    answer = api.post(f"/api/v1/messages/{waiting}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled" and "cancelled by alice" in answer.json()["error"]
    again = api.post(f"/api/v1/messages/{waiting}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_edit_then_resubmit_runs_the_edited_payload_as_a_new_linked_message(api, client, user, async_flow, tmp_path):
    original = push(client, user, {"id": "oops", "name": {"family": "Typo"}})
    assert Message.objects.get(pk=original).status == "failed"  # id is not an integer: every record rejected
    answer = api.post(f"/api/v1/messages/{original}/edit-resubmit",
                      {"body": json.dumps({"id": 5, "name": {"family": "Fixed"}})}, format="json")
    assert answer.status_code == 201, answer.content
    copy = Message.objects.get(pk=answer.json()["id"])
    assert copy.resubmitted_from_id is not None and str(copy.resubmitted_from_id) == original
    assert copy.user == user and copy.headers["X-Pushflow-Edited-By"] == "alice"
    assert copy.status == "succeeded" and json.loads(copy.read_body())["id"] == 5
    assert Message.objects.get(pk=original).status == "failed"  # the original stays as it was
    assert api.post(f"/api/v1/messages/{original}/edit-resubmit", {"body": 5}, format="json").status_code == 400


def test_bulk_resubmit_of_the_failed_ones(api, client, user, async_flow):
    bad = [push(client, user, {"id": "x", "name": {"family": f"B{i}"}}) for i in range(3)]
    good = push(client, user, {"id": 1, "name": {"family": "G"}})
    answer = api.post("/api/v1/messages/resubmit?status=failed")
    assert answer.status_code == 202 and answer.json()["resubmitted"] == 3 and answer.json()["skipped"] == 0
    for message_id in bad:
        assert Message.objects.get(pk=message_id).runs.count() == 2
    assert Message.objects.get(pk=good).runs.count() == 1


def test_the_flow_retry_policy_decides_tries_and_waits(user, async_flow, settings):
    async_flow.retry = {"count": 3, "backoff": 5, "max_delay": 8}
    assert [retry_delay(async_flow, attempt) for attempt in (1, 2, 3)] == [5, 8, None]
    settings.PUSHFLOW_OUTBOUND_ALLOW = ["127.0.0.1"]
    down = Connection.objects.create(owner=user, name="down", kind="http",
                                     options={"url": f"http://127.0.0.1:{free_port()}/", "retries": 0, "timeout": 2})
    Flow.objects.filter(pk=async_flow.pk).update(destination_connection=down, retry={"count": 2, "backoff": 0})
    message = Message.objects.create(listener=async_flow.listener, flow=async_flow, owner=user, method="POST", status="queued")
    message.store_body(b'{"id": 1, "name": {"family": "R"}}')
    message.save()
    run_message(message.pk)
    message.refresh_from_db()
    assert message.status == "queued" and "retrying" in message.error
    run_message(message.pk)
    message.refresh_from_db()
    assert message.status == "failed" and "after 2 tries" in message.error and "could not connect" in message.error


def test_a_bad_retry_policy_is_refused(api, async_flow):
    answer = api.patch(f"/api/v1/flows/{async_flow.pk}/", {"retry": {"count": 0, "sometimes": True}}, format="json")
    assert answer.status_code == 400 and "retry" in answer.json()
