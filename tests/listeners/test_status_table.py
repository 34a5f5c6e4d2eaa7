"""Every row of DESIGN §2's status table, for async and sync listeners, through the ingest view."""
import base64
import json
import time

import pytest
from django.db import DatabaseError

from listeners.models import Listener, Message
from tests.conftest import PASSWORD, token_for

# Committed data: sync flows run in a worker thread with its own connection, and publishing waits for commit.
pytestmark = pytest.mark.django_db(transaction=True)
PATIENT = {"id": 7, "name": {"family": "Doe", "given": ["Jane"]}}


def basic(user) -> str:
    return "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()


def post(client, path, body=PATIENT, auth=None, content_type="application/json", **extra):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(path, data, content_type=content_type, **headers, **extra)


# --- async ---


def test_async_accepts_with_202_message_id_status_url_and_runs_the_flow(client, user, async_flow, out_folder):
    response = post(client, "/listen/patients", auth=f"Bearer {token_for(user)}")
    assert response.status_code == 202
    body = response.json()
    assert response["X-Message-Id"] == body["message_id"]
    assert body["status_url"].endswith(f"/api/v1/messages/{body['message_id']}/")
    message = Message.objects.get(pk=body["message_id"])
    assert json.loads(message.read_body()) == PATIENT
    assert message.status == Message.Status.SUCCEEDED  # tasks run eagerly in these tests
    written = (out_folder.options["path"] + f"/{message.pk}.csv")
    assert open(written, newline="").read() == "id,family\r\n7,Doe\r\n"
    run = message.runs.get()
    assert (run.status, run.records_in, run.records_out) == ("succeeded", 1, 1)


def test_async_payload_is_kept_even_when_the_flow_fails_later(client, user, async_flow):
    response = post(client, "/listen/patients", body={"id": "not a number"}, auth=f"Bearer {token_for(user)}")
    assert response.status_code == 202
    message = Message.objects.get(pk=response.json()["message_id"])
    assert message.status == Message.Status.FAILED
    assert "id" in message.error and "integer" in message.error
    assert json.loads(message.read_body()) == {"id": "not a number"}


# --- sync ---


def test_sync_answers_200_with_the_mapped_json(client, user, sync_flow):
    response = post(client, "/listen/echo", auth=basic(user))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"full": "Doe"}
    message = Message.objects.get(pk=response["X-Message-Id"])
    assert message.status == Message.Status.SUCCEEDED
    assert message.response_status == 200


def test_sync_bad_data_is_422_with_a_fault_body(client, user, sync_flow):
    response = post(client, "/listen/echo", body=b"{not json", auth=basic(user))
    assert response.status_code == 422
    fault = response.json()
    assert fault["message_id"] == response["X-Message-Id"]
    assert "malformed JSON" in fault["error"] and "line 1" in fault["error"]
    assert Message.objects.get(pk=fault["message_id"]).status == Message.Status.FAILED


def test_sync_flow_fault_is_500_with_the_reason(client, user, sync_flow, out_folder, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    out_folder.options = {"path": str(blocker)}
    out_folder.save()
    sync_flow.destination_connection = out_folder
    sync_flow.destination_options = {"file_name": "{message_id}.json"}
    sync_flow.save()
    response = post(client, "/listen/echo", auth=basic(user))
    assert response.status_code == 500
    assert "delivery to 'out' failed" in response.json()["error"]


def test_sync_past_the_timeout_is_504_and_the_run_still_finishes(client, user, sync_flow, monkeypatch):
    import flows.services

    real_execute = flows.services.execute

    def slow(*args, **kwargs):
        time.sleep(0.6)
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(flows.services, "execute", slow)
    Listener.objects.filter(pk=sync_flow.listener_id).update(timeout_seconds=0.1)
    response = post(client, "/listen/echo", auth=basic(user))
    assert response.status_code == 504
    assert "did not finish within" in response.json()["error"]
    message_id = response["X-Message-Id"]
    deadline = time.time() + 5
    while time.time() < deadline and Message.objects.get(pk=message_id).status == Message.Status.RUNNING:
        time.sleep(0.05)
    assert Message.objects.get(pk=message_id).status == Message.Status.SUCCEEDED


# --- refusals ---


@pytest.mark.parametrize("path", ["/listen/nowhere", "/listen/patients/extra", "/listen/../admin/"])
def test_unknown_path_is_404(client, user, async_flow, path):
    assert post(client, path, auth=f"Bearer {token_for(user)}").status_code == 404


def test_disabled_listener_is_404(client, user, async_flow):
    Listener.objects.filter(pk=async_flow.listener_id).update(enabled=False)
    assert post(client, "/listen/patients", auth=f"Bearer {token_for(user)}").status_code == 404


def test_missing_or_wrong_credentials_are_401_with_a_challenge(client, user, sync_flow, async_flow):
    response = post(client, "/listen/echo")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    wrong = "Basic " + base64.b64encode(f"{user.username}:nope".encode()).decode()
    assert post(client, "/listen/echo", auth=wrong).status_code == 401
    assert post(client, "/listen/patients", auth="Bearer pf_forged").status_code == 401
    rejected = Message.objects.filter(status=Message.Status.REJECTED, response_status=401)
    assert rejected.count() == 3
    assert all("credentials" in m.error for m in rejected)


def test_a_user_not_allowed_on_the_listener_is_403_until_allowed(client, other_user, async_flow):
    auth = f"Bearer {token_for(other_user)}"
    response = post(client, "/listen/patients", auth=auth)
    assert response.status_code == 403
    assert other_user.username in response.json()["error"]
    async_flow.listener.allowed_users.add(other_user)
    assert post(client, "/listen/patients", auth=auth).status_code == 202


def test_api_key_listener(client, user, async_flow):
    listener = async_flow.listener
    listener.auth = "api_key"
    listener.api_key_header = "X-Partner-Key"
    listener.secrets = {"api_keys": ["old-key", "new-key"]}
    listener.save()
    assert post(client, "/listen/patients", HTTP_X_PARTNER_KEY="new-key").status_code == 202
    assert post(client, "/listen/patients", HTTP_X_PARTNER_KEY="old-key").status_code == 202
    assert post(client, "/listen/patients", HTTP_X_PARTNER_KEY="guess").status_code == 401
    stored = Message.objects.filter(status=Message.Status.SUCCEEDED).first()
    assert stored.headers["X-Partner-Key"] == "***"


def test_method_not_allowed_is_405_with_allow(client, user, async_flow):
    response = client.get("/listen/patients", HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_content_type_not_accepted_is_415(client, user, async_flow):
    Listener.objects.filter(pk=async_flow.listener_id).update(content_types=["application/json"])
    response = post(client, "/listen/patients", body=b"id,family\n1,Doe\n", content_type="text/csv",
                    auth=f"Bearer {token_for(user)}")
    assert response.status_code == 415
    assert "text/csv" in response.json()["error"]
    assert post(client, "/listen/patients", content_type="application/json; charset=utf-8",
                auth=f"Bearer {token_for(user)}").status_code == 202


def test_body_over_the_limit_is_413_and_not_stored(client, user, async_flow):
    Listener.objects.filter(pk=async_flow.listener_id).update(max_body_bytes=100)
    response = post(client, "/listen/patients", body={"x": "y" * 200}, auth=f"Bearer {token_for(user)}")
    assert response.status_code == 413
    assert "at most 100" in response.json()["error"]
    rejected = Message.objects.get()
    assert rejected.status == Message.Status.REJECTED and rejected.size == 0 and rejected.read_body() == b""


def test_validation_at_the_door_is_422_with_the_parsers_reason(client, user, async_flow, json_format):
    Listener.objects.filter(pk=async_flow.listener_id).update(format=json_format)
    response = post(client, "/listen/patients", body=b'{"id": 1,\n "name": }', auth=f"Bearer {token_for(user)}")
    assert response.status_code == 422
    assert "line 2" in response.json()["error"]
    rejected = Message.objects.get()
    assert rejected.status == Message.Status.REJECTED and rejected.read_body() == b'{"id": 1,\n "name": }'


def test_store_unavailable_is_503_never_2xx(client, user, async_flow, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(Message, "save", broken_save)
    response = post(client, "/listen/patients", auth=f"Bearer {token_for(user)}")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "not kept" in response.json()["error"]


def test_authorization_header_is_masked_in_the_stored_message(client, user, async_flow):
    response = post(client, "/listen/patients", auth=f"Bearer {token_for(user)}")
    message = Message.objects.get(pk=response.json()["message_id"])
    assert message.headers["Authorization"] == "***"
    assert message.user == user


def test_empty_body_to_a_json_sync_flow_is_422_not_200(client, user, sync_flow):
    response = post(client, "/listen/echo", body=b"", auth=basic(user))
    assert response.status_code == 422
    assert "empty" in response.json()["error"]
