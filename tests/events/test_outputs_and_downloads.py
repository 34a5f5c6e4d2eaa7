"""Kept outputs: `output.ready` carries an absolute signed download URL that opens the file without a login,
and is refused with 403 once expired or altered."""
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from events.models import Output
from events.signing import download_query
from flows.services import run_message
from listeners.models import Message

pytestmark = pytest.mark.django_db


def run(flow, capture, body=b'{"id": 7, "name": {"family": "Doe"}}'):
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/x", status="queued")
    message.store_body(body)
    message.save()
    with capture(execute=True):
        return run_message(message.pk)


@pytest.fixture
def output(user, async_flow, make_subscription, subscriber, django_capture_on_commit_callbacks):
    make_subscription(user, ["output.ready"], [async_flow])
    run(async_flow, django_capture_on_commit_callbacks)
    return Output.objects.get()


def test_output_ready_carries_an_absolute_download_url_that_works_without_login(output, subscriber, client, async_flow, settings):
    data = subscriber.payloads("output.ready")[0]["data"]
    assert (data["output"], data["flow"], data["entity_name"], data["content_type"]) == (
        output.pk, async_flow.pk, "patients to csv", "text/csv")
    url = urlsplit(data["download_url"])
    assert url.scheme == "http" and url.netloc and url.path == f"/api/v1/outputs/{output.pk}/download"
    response = client.get(f"{url.path}?{url.query}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"id,family\r\n7,Doe\r\n" == output.file.read_bytes()
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    expires = int(parse_qs(url.query)["expires"][0])
    assert abs(expires - time.time() - settings.PUSHFLOW_DOWNLOAD_URL_SECONDS) < 30


def test_the_public_url_setting_makes_the_base(output, subscriber, async_flow, settings, django_capture_on_commit_callbacks):
    settings.PUSHFLOW_PUBLIC_URL = "https://pushflow.example.com/"
    run(async_flow, django_capture_on_commit_callbacks)
    assert subscriber.payloads("output.ready")[1]["data"]["download_url"].startswith(
        "https://pushflow.example.com/api/v1/outputs/")


def test_an_expired_url_is_refused(output, client):
    query, _ = download_query(output.pk, seconds=60, now=time.time() - 120)
    response = client.get(f"/api/v1/outputs/{output.pk}/download?{query}")
    assert response.status_code == 403 and "expired" in response.json()["detail"]


@pytest.mark.parametrize("alter", ["signature", "expires", "id", "missing"])
def test_an_altered_url_is_refused(output, client, alter):
    query, expires = download_query(output.pk)
    params = {k: v[0] for k, v in parse_qs(query).items()}
    pk = output.pk
    if alter == "signature":
        params["signature"] = params["signature"][:-1] + ("0" if params["signature"][-1] != "0" else "1")
    elif alter == "expires":
        params["expires"] = str(expires + 86400)
    elif alter == "id":
        other = Output.objects.create(owner=output.owner, flow=output.flow, path="x.csv")
        pk = other.pk
    else:
        params.pop("signature")
    response = client.get(f"/api/v1/outputs/{pk}/download", params)
    assert response.status_code == 403
    assert "signature" in response.json()["detail"]


def test_a_bad_token_does_not_stand_in_the_way_of_a_signed_url(output, client):
    query, _ = download_query(output.pk)
    response = client.get(f"/api/v1/outputs/{output.pk}/download?{query}", HTTP_AUTHORIZATION="Bearer nonsense")
    assert response.status_code == 200


def test_outputs_are_listed_for_those_who_may_see_their_flow(output, api, other_user):
    from rest_framework.test import APIClient

    from tests.conftest import token_for

    listed = api.get("/api/v1/outputs/").json()
    assert [o["id"] for o in listed["results"]] == [output.pk]
    detail = api.get(f"/api/v1/outputs/{output.pk}/").json()
    assert "/download?expires=" in detail["download_url"]
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(other_user)}")
    assert stranger.get("/api/v1/outputs/").json()["count"] == 0
    assert stranger.get(f"/api/v1/outputs/{output.pk}/").status_code == 404


def test_no_output_is_kept_when_nobody_wants_it(async_flow, user, make_subscription, django_capture_on_commit_callbacks):
    make_subscription(user, ["run.succeeded"], [async_flow])
    run(async_flow, django_capture_on_commit_callbacks)
    assert Output.objects.count() == 0


@pytest.mark.parametrize("params", [{"expires": "١٢٣", "signature": "x"}, {"expires": "1", "signature": "é" * 64},
                                    {"expires": "9" * 40, "signature": "0"}])
def test_garbage_in_a_download_url_is_a_403_not_a_500(output, client, params):
    assert client.get(f"/api/v1/outputs/{output.pk}/download", params).status_code == 403


def test_a_streamed_async_run_keeps_its_whole_output_for_subscribers(user, async_flow, make_subscription, subscriber,
                                                                      django_capture_on_commit_callbacks):
    """Async runs drop their output once delivered, unless an output.ready subscriber or a queue takes it."""
    async_flow.mapping = {"records": "patients", "fields": [{"target": "id", "source": "id", "type": "integer"},
                                                             {"target": "family", "source": "name.family"}]}
    async_flow.save()
    make_subscription(user, ["output.ready"], [async_flow])
    run(async_flow, django_capture_on_commit_callbacks,
        b'{"patients": [{"id": 1, "name": {"family": "Ada"}}, {"id": 2, "name": {"family": "Bo"}}]}')
    assert Output.objects.get().file.read_bytes() == b"id,family\r\n1,Ada\r\n2,Bo\r\n"
