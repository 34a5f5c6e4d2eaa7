"""The listener page's "send test payload" box goes through the real ingest path as the
signed-in user: the listener's method, content type, size, format and auth rules apply, a
sync listener answers inline, and the page shows the answer with a link to the message."""
import html

import pytest

from accounts.models import ApiToken
from listeners.models import Listener, Message
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logged_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def send(client, listener, body, REMOTE_ADDR="127.0.0.1", **fields) -> str:
    answer = client.post(f"/listeners/{listener.pk}/test", {"body": body, **fields}, follow=True, REMOTE_ADDR=REMOTE_ADDR)
    assert answer.status_code == 200
    return html.unescape(answer.content.decode())


def test_an_async_push_answers_202_as_the_user_and_links_the_message(logged_in, user, async_flow):
    text = send(logged_in, async_flow.listener, '{"id": 7, "name": {"family": "Test"}}', content_type="application/json")
    message = Message.objects.get(listener=async_flow.listener)
    assert message.status == "succeeded" and message.user == user and message.method == "POST"
    assert message.headers["X-Pushflow-Sample"] == "sent from the listener page"
    assert message.headers["Authorization"] == "***"  # the short-lived token is never kept
    assert '<span class="status status-succeeded" id="sample-status">202 Accepted</span>' in text
    assert f'"message_id": "{message.pk}"' in text.replace('":"', '": "')
    assert f'id="last-sample" href="/messages/{message.pk}/"' in text
    assert not ApiToken.objects.filter(user=user).exists()  # the call's token is gone


def test_a_sync_listener_answers_inline_with_the_flow_output(logged_in, user, sync_flow):
    text = send(logged_in, sync_flow.listener, '{"name": {"family": "Doe"}}', content_type="application/json")
    assert "200 OK" in text and "application/json" in text
    assert '{"full":"Doe"}' in text.replace(" ", "")
    message = Message.objects.get(listener=sync_flow.listener)
    assert message.status == "succeeded" and f'href="/messages/{message.pk}/"' in text


@pytest.mark.parametrize("fields, status, reason", [
    ({"method": "PUT"}, "405 Method Not Allowed", "method PUT not allowed"),
    ({"content_type": "text/plain"}, "415 Unsupported Media Type", "content type 'text/plain' not accepted"),
    ({"body": "{" + '"a": 1,' * 40 + '"b": 2}'}, "413 Request Entity Too Large", "accepts at most 100"),
    ({"body": "{not json"}, "422 Unprocessable Entity", "malformed JSON"),
])
def test_the_listener_rules_apply_and_the_refusal_is_shown_and_kept(logged_in, user, json_format, fields, status,
                                                                     reason):
    listener = Listener.objects.create(owner=user, name="strict", path="strict", auth="token", format=json_format,
                                       content_types=["application/json"], max_body_bytes=100)
    text = send(logged_in, listener, fields.pop("body", '{"a": 1}'), **{"content_type": "application/json", **fields})
    assert status in text and reason in text
    message = Message.objects.get(listener=listener)
    assert message.status == "rejected" and reason in message.error
    assert f'href="/messages/{message.pk}/"' in text


def test_an_api_key_listener_needs_the_key_in_the_extra_headers(logged_in, user):
    listener = Listener.objects.create(owner=user, name="keyed", path="keyed", auth="api_key")
    listener.secrets = {"api_key": "k-123"}
    listener.save()
    assert "401 Unauthorized" in send(logged_in, listener, "{}")
    assert "202 Accepted" in send(logged_in, listener, "{}", headers="X-API-Key: k-123\nIdempotency-Key: t-1")
    accepted = Message.objects.exclude(status="rejected").get(listener=listener)
    assert accepted.idempotency_key == "t-1" and accepted.headers["X-Api-Key"] == "***"


@pytest.mark.parametrize("scheme, header", [("standard", "Webhook-Signature"), ("github", "X-Hub-Signature-256"),
                                             ("stripe", "Stripe-Signature")])
def test_an_hmac_listener_s_test_payload_is_signed_here_unless_the_user_signs_it(logged_in, user, scheme, header):
    listener = Listener.objects.create(owner=user, name="signed", path="signed", auth="hmac", signature={"scheme": scheme})
    listener.secrets = {"signing_keys": ["whsec_c2VjcmV0LWtleS1uZXc=", "older-key"]}
    listener.save()
    assert "202 Accepted" in send(logged_in, listener, '{"a": 1}')  # signed with the newest key, as a partner would
    accepted = Message.objects.get(listener=listener)
    assert accepted.status != "rejected" and header in accepted.headers
    text = send(logged_in, listener, '{"a": 1}', headers=f"{header}: forged")  # the user's own (bad) signature is kept
    assert "401 Unauthorized" in text
    refused = Message.objects.filter(listener=listener, status="rejected").get()
    assert "signature" in refused.error.lower() or "Stripe" in refused.error


def test_the_ip_allow_list_applies_to_the_signed_in_user_s_address(client, user, other_user):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="lab")
    other_user.groups.add(team)
    listener = Listener.objects.create(owner=user, name="lab", path="lab", auth="basic", ip_allowlist=["10.9.9.0/24"])
    listener.teams.add(team)
    assert client.login(username=other_user.username, password=PASSWORD)
    text = send(client, listener, "{}")
    assert "403 Forbidden" in text and "address 127.0.0.1 is not allowed" in text
    assert Message.objects.get(listener=listener).status == "rejected"
    text = send(client, listener, "{}", REMOTE_ADDR="10.9.9.7")
    assert "202 Accepted" in text and Message.objects.exclude(status="rejected").get(listener=listener).user == other_user


def test_bad_box_input_is_explained_and_sends_nothing(logged_in, user, async_flow):
    listener = async_flow.listener
    assert "header line 1 is not 'Name: value'" in send(logged_in, listener, "{}", headers="no colon")
    assert "header Authorization is set by the test box itself" in send(logged_in, listener, "{}",
                                                                         headers="Authorization: Basic eDp5")
    assert "method 'TRACE' is not one of" in send(logged_in, listener, "{}", method="TRACE")
    assert not Message.objects.filter(listener=listener).exists()
