"""The messages page and a message's page: filters (with readable errors), readable payloads,
actions, and nobody else's messages."""
import html
import json

import pytest

from listeners.models import Message
from tests.conftest import PASSWORD, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logged_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def push(client, user, body: dict) -> str:
    answer = client.post("/listen/patients", json.dumps(body), content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert answer.status_code == 202
    return answer.json()["message_id"]


def test_the_list_filters_by_text_and_status(logged_in, user, async_flow):
    wanted = push(logged_in, user, {"id": 1, "name": {"family": "Needle"}})
    push(logged_in, user, {"id": 2, "name": {"family": "Hay"}})
    page = logged_in.get("/messages/?q=Needle").content.decode()
    assert wanted[:8] in page and page.count('class="status status-') == 1
    assert "No messages match" in logged_in.get("/messages/?status=failed").content.decode()
    rows = logged_in.get("/messages/?partial=1&q=Hay").content.decode()
    assert "<tr>" in rows and "<html" not in rows  # the live table's partial


@pytest.mark.parametrize("query, words", [("status=bogus", "unknown status"), ("since=yesterday", "not an ISO 8601"),
                                          ("listener=abc", "numeric id")])
def test_a_bad_filter_is_a_readable_message_not_an_error_page(logged_in, query, words):
    answer = logged_in.get(f"/messages/?{query}")
    assert answer.status_code == 200 and words in answer.content.decode()


def test_the_message_page_shows_the_payload_runs_and_resubmits(logged_in, user, async_flow):
    message_id = push(logged_in, user, {"id": 3, "name": {"family": "Shown"}})
    page = html.unescape(logged_in.get(f"/messages/{message_id}/").content.decode())
    assert '"family": "Shown"' in page and "read 1 records" in page
    answer = logged_in.post(f"/messages/{message_id}/resubmit", follow=True)
    assert "Resubmitted" in answer.content.decode()
    assert Message.objects.get(pk=message_id).runs.count() == 2
    edited = logged_in.post(f"/messages/{message_id}/edit", {"body": json.dumps({"id": 4, "name": {"family": "Edited"}})},
                            follow=True)
    assert "edited payload was resubmitted" in edited.content.decode()
    assert Message.objects.filter(resubmitted_from_id=message_id, status="succeeded").count() == 1
    download = logged_in.get(f"/messages/{message_id}/download")
    assert json.loads(download.content)["name"]["family"] == "Shown"
    refused = logged_in.post(f"/messages/{message_id}/cancel", follow=True)
    assert "only a received, queued or failed message can be cancelled" in refused.content.decode()


def test_xml_and_hl7_payloads_are_laid_out(logged_in, user, async_flow):
    xml = Message.objects.create(listener=async_flow.listener, owner=user, method="POST", content_type="application/xml",
                                 body_text="<a><b>1</b><c>2</c></a>")
    hl7 = Message.objects.create(listener=async_flow.listener, owner=user, method="POST", body_text="MSH|^~\\&|A\rPID|1||42")
    assert "<a>\n  <b>1</b>" in html.unescape(logged_in.get(f"/messages/{xml.pk}/").content.decode())
    assert "MSH|^~\\&|A\nPID|1||42" in html.unescape(logged_in.get(f"/messages/{hl7.pk}/").content.decode())


def test_nobody_else_s_messages(client, user, other_user, async_flow):
    message_id = push(client, user, {"id": 5, "name": {"family": "Private"}})
    assert client.login(username=other_user.username, password=PASSWORD)
    assert client.get(f"/messages/{message_id}/").status_code == 404
    assert client.post(f"/messages/{message_id}/resubmit").status_code == 404
    assert message_id[:8] not in client.get("/messages/").content.decode()
