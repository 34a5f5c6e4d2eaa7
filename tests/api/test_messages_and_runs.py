"""Messages and runs through the API: filters, raw body, resubmit, and who may see what."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from flows.models import FlowRun
from listeners.models import Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


def push(user, body: dict) -> str:
    response = client_for(user).post("/listen/patients", json.dumps(body), content_type="application/json")
    assert response.status_code == 202
    return response.json()["message_id"]


def test_filters_by_listener_flow_status_time_and_text(api, user, async_flow):
    ok = push(user, {"id": 1, "name": {"family": "Findable"}})
    bad = push(user, {"id": "x"})
    assert api.get(f"/api/v1/messages/?listener={async_flow.listener_id}").json()["count"] == 2
    assert api.get(f"/api/v1/messages/?flow={async_flow.pk}").json()["count"] == 2
    assert [m["id"] for m in api.get("/api/v1/messages/?status=failed").json()["results"]] == [bad]
    assert [m["id"] for m in api.get("/api/v1/messages/?q=findable").json()["results"]] == [ok]
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert api.get("/api/v1/messages/", {"since": future}).json()["count"] == 0
    assert api.get("/api/v1/messages/", {"until": future}).json()["count"] == 2
    listed = api.get("/api/v1/messages/").json()["results"]
    assert [m["id"] for m in listed] == [bad, ok]  # newest first
    assert listed[1]["runs"][0]["status"] == "succeeded"


@pytest.mark.parametrize("query", ["status=done", "since=yesterday", "listener=abc", "until=2026-13-45"])
def test_bad_filter_values_are_400_not_500(api, query):
    response = api.get(f"/api/v1/messages/?{query}")
    assert response.status_code == 400


def test_body_returns_the_raw_bytes(api, user, async_flow):
    message_id = push(user, {"id": 3, "name": {"family": "Ünïcode"}})
    response = api.get(f"/api/v1/messages/{message_id}/body")
    assert response.status_code == 200
    assert json.loads(response.content) == {"id": 3, "name": {"family": "Ünïcode"}}


def test_resubmit_runs_the_flow_again_as_a_new_run(api, user, async_flow):
    message_id = push(user, {"id": 4, "name": {"family": "Again"}})
    response = api.post(f"/api/v1/messages/{message_id}/resubmit")
    assert response.status_code == 202
    runs = FlowRun.objects.filter(message_id=message_id).order_by("started_at")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert Message.objects.get(pk=message_id).status == Message.Status.SUCCEEDED


def test_resubmit_is_409_while_queued_and_for_a_rejected_request(api, user, async_flow):
    message_id = push(user, {"id": 5})
    Message.objects.filter(pk=message_id).update(status=Message.Status.QUEUED)
    assert api.post(f"/api/v1/messages/{message_id}/resubmit").status_code == 409
    rejected = Message.objects.create(owner=user, listener=async_flow.listener, method="POST", path="/x", status="rejected")
    response = api.post(f"/api/v1/messages/{rejected.pk}/resubmit")
    assert response.status_code == 409 and "rejected" in response.json()["detail"]


def test_runs_filter_by_flow_message_and_status(api, user, async_flow):
    good = push(user, {"id": 6, "name": {"family": "R"}})
    push(user, {"id": "bad"})
    assert api.get(f"/api/v1/runs/?flow={async_flow.pk}").json()["count"] == 2
    assert api.get(f"/api/v1/runs/?message={good}").json()["results"][0]["records_out"] == 1
    failed = api.get("/api/v1/runs/?status=failed").json()["results"]
    assert len(failed) == 1 and "integer" in failed[0]["error"]


def test_another_user_sees_none_of_it_and_an_admin_sees_all(user, other_user, admin_user, async_flow):
    message_id = push(user, {"id": 8, "name": {"family": "Private"}})
    bob = client_for(other_user)
    for path in ["/api/v1/formats/", "/api/v1/connections/", "/api/v1/listeners/", "/api/v1/flows/",
                 "/api/v1/messages/", "/api/v1/runs/"]:
        assert bob.get(path).json()["count"] == 0, path
    for path in [f"/api/v1/messages/{message_id}/", f"/api/v1/messages/{message_id}/body",
                 f"/api/v1/flows/{async_flow.pk}/", f"/api/v1/listeners/{async_flow.listener_id}/"]:
        assert bob.get(path).status_code == 404, path
    assert bob.patch(f"/api/v1/flows/{async_flow.pk}/", {"name": "mine now"}, format="json").status_code == 404
    assert bob.delete(f"/api/v1/listeners/{async_flow.listener_id}/").status_code == 404
    assert bob.post(f"/api/v1/messages/{message_id}/resubmit").status_code == 404
    root = client_for(admin_user)
    assert root.get(f"/api/v1/messages/{message_id}/").status_code == 200
    assert root.get("/api/v1/flows/").json()["count"] == 1


def test_references_to_another_users_objects_are_refused(other_user, async_flow, json_format, out_folder):
    bob = client_for(other_user)
    flow = {"name": "steal", "source_format": json_format.pk, "listener": async_flow.listener_id,
            "mapping": {"fields": [{"target": "a", "value": 1}]},
            "destination": {"connection": out_folder.pk, "format": json_format.pk, "options": {}}}
    response = bob.post("/api/v1/flows/", flow, format="json")
    assert response.status_code == 400
    assert {"source_format", "listener", "destination"} <= set(response.json())


def test_schema_docs_and_health(api, client, user):
    schema = api.get("/api/v1/schema")
    assert schema.status_code == 200 and b"/api/v1/messages/" in schema.content
    client.force_login(user)
    assert client.get("/api/v1/docs").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["database"] == "ok"


@pytest.mark.parametrize("path", ["/api/v1/messages/?listener=%C2%B2", "/api/v1/messages/?flow=99999999999999999999999",
                                  "/api/v1/runs/?message=not-a-uuid", "/api/v1/runs/?flow=1.5"])
def test_odd_id_filters_are_400(api, path):
    assert api.get(path).status_code == 400
