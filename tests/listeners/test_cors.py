"""CORS per listener: a browser page from a listed origin may push; others get no CORS headers,
and their preflight is refused."""
import json

import pytest

from listeners.models import Listener, Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cors_flow(async_flow):
    Listener.objects.filter(pk=async_flow.listener_id).update(cors_origins=["https://app.example.com"])
    return async_flow


def preflight(client, origin: str):
    return client.options("/listen/patients", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type")


def test_a_listed_origin_passes_the_preflight_and_reads_the_answer(client, user, cors_flow):
    answer = preflight(client, "https://app.example.com")
    assert answer.status_code == 204
    assert answer["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in answer["Access-Control-Allow-Methods"] and "Authorization" in answer["Access-Control-Allow-Headers"]
    pushed = client.post("/listen/patients", json.dumps({"id": 1, "name": {"family": "Web"}}), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token_for(user)}", HTTP_ORIGIN="https://app.example.com")
    assert pushed.status_code == 202
    assert pushed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "X-Message-Id" in pushed["Access-Control-Expose-Headers"]
    assert Message.objects.count() == 1  # a preflight is not a message


def test_another_origin_gets_no_cors_headers_and_a_refused_preflight(client, user, cors_flow):
    answer = preflight(client, "https://evil.example.net")
    assert answer.status_code == 403 and "may not call this listener" in answer.json()["error"]
    assert "Access-Control-Allow-Origin" not in answer
    pushed = client.post("/listen/patients", json.dumps({"id": 1, "name": {"family": "X"}}), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token_for(user)}", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in pushed  # the browser will not show the answer to that page


def test_a_listener_without_origins_refuses_every_preflight(client, async_flow):
    assert preflight(client, "https://app.example.com").status_code == 403


@pytest.mark.parametrize("origins, ok", [
    (["https://app.example.com"], True), (["*"], True), (["http://localhost:3000"], True),
    (["https://app.example.com/path"], False), (["javascript:alert(1)"], False), ("https://a.example", False),
])
def test_cors_origins_are_validated(api, async_flow, origins, ok):
    response = api.patch(f"/api/v1/listeners/{async_flow.listener_id}/", {"cors_origins": origins}, format="json")
    assert (response.status_code == 200) is ok, response.content
