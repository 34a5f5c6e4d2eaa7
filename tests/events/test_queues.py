"""Pull queues: next hands out the oldest output under a lease, ack removes it, a lease that runs out
returns the item, and two pollers at once never receive the same item."""
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from events.models import Output, Queue, QueueItem
from events.services import lease_next
from flows.services import run_message
from listeners.models import Message


def run(flow, capture=None, body=b'{"id": 7, "name": {"family": "Doe"}}'):
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/x", status="queued")
    message.store_body(body)
    message.save()
    if capture is None:
        return run_message(message.pk)
    with capture(execute=True):  # as after a real commit: the output file is moved into place
        return run_message(message.pk)


def make_queue(owner, flows, name="erp", lease_seconds=300) -> Queue:
    queue = Queue.objects.create(owner=owner, name=name, lease_seconds=lease_seconds)
    queue.flows.set(flows)
    return queue


@pytest.mark.django_db
def test_next_ack_and_empty(api, user, async_flow, client, django_capture_on_commit_callbacks):
    created = api.post("/api/v1/queues/", {"name": "erp", "flows": [async_flow.pk], "lease_seconds": 60}, format="json")
    assert created.status_code == 201, created.content
    assert api.get("/api/v1/queues/erp/next").status_code == 204
    first = run(async_flow, django_capture_on_commit_callbacks)
    run(async_flow, django_capture_on_commit_callbacks, body=b'{"id": 8, "name": {"family": "Roe"}}')
    assert api.get("/api/v1/queues/erp/").json()["depth"] == {"available": 2, "leased": 0}
    item = api.get("/api/v1/queues/erp/next").json()
    assert (item["flow"], item["run"], item["message"]) == (async_flow.pk, first.pk, str(first.message_id))
    assert item["download_url"].startswith("http://testserver/api/v1/outputs/")
    download = client.get(item["download_url"].removeprefix("http://testserver"))
    assert b"".join(download.streaming_content) == b"id,family\r\n7,Doe\r\n"
    second = api.get("/api/v1/queues/erp/next").json()
    assert second["id"] != item["id"] and second["output"] != item["output"]
    assert api.get("/api/v1/queues/erp/next").status_code == 204  # both are out on a lease
    assert api.get("/api/v1/queues/erp/").json()["depth"] == {"available": 0, "leased": 2}
    assert api.post(f"/api/v1/queues/erp/ack/{item['id']}").status_code == 204
    assert api.post(f"/api/v1/queues/erp/ack/{item['id']}").status_code == 404  # once
    assert api.post("/api/v1/queues/erp/ack/not-a-lease").status_code == 404
    assert QueueItem.objects.count() == 1


@pytest.mark.django_db
def test_a_lease_that_runs_out_is_handed_out_again(api, user, async_flow):
    queue = make_queue(user, [async_flow], lease_seconds=30)
    run(async_flow)
    first = api.get("/api/v1/queues/erp/next").json()
    assert api.get("/api/v1/queues/erp/next").status_code == 204
    again = lease_next(queue, now=timezone.now() + timedelta(seconds=31))
    assert again is not None and again.output_id == first["output"] and str(again.lease_id) != first["id"]
    # The first poller's lease is gone: its late ack cannot remove the item the second poller holds.
    assert api.post(f"/api/v1/queues/erp/ack/{first['id']}").status_code == 404
    assert api.post(f"/api/v1/queues/erp/ack/{again.lease_id}").status_code == 204
    assert QueueItem.objects.count() == 0


@pytest.mark.django_db
def test_queue_rules_and_access(api, user, other_user, async_flow):
    from rest_framework.test import APIClient

    from tests.conftest import token_for

    assert api.post("/api/v1/queues/", {"name": "bad name!", "flows": []}, format="json").status_code == 400
    assert api.post("/api/v1/queues/", {"name": "q", "lease_seconds": 0}, format="json").status_code == 400
    assert api.post("/api/v1/queues/", {"name": "q", "flows": [async_flow.pk]}, format="json").status_code == 201
    assert api.post("/api/v1/queues/", {"name": "q"}, format="json").status_code == 400  # names are unique
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(other_user)}")
    assert stranger.get("/api/v1/queues/q/next").status_code == 404
    assert stranger.post("/api/v1/queues/", {"name": "theirs", "flows": [async_flow.pk]}, format="json").status_code == 400
    assert api.get("/api/v1/queues/missing/next").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_pollers_at_once_never_get_the_same_item(user, async_flow):
    queue = make_queue(user, [async_flow])
    output = Output.objects.create(owner=user, flow=async_flow, path="x.csv")
    QueueItem.objects.bulk_create([QueueItem(queue=queue, output=output) for _ in range(40)])
    start = threading.Barrier(4)

    def poll() -> list[int]:
        got = []
        try:
            start.wait()
            while (item := lease_next(queue)) is not None:
                got.append(item.pk)
        finally:
            connection.close()
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: poll(), range(4)))
    handed = [pk for got in results for pk in got]
    assert len(handed) == 40 and len(set(handed)) == 40
    assert QueueItem.objects.filter(lease_id__isnull=True).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": "x" * 101}, "name", "100 characters"),
    ({"name": "é"}, "name", "letters, digits"),
    ({"name": "ok", "lease_seconds": "x"}, "lease_seconds", "valid integer"),
    ({"name": "ok", "lease_seconds": True}, "lease_seconds", "valid integer"),
    ({"name": "ok", "lease_seconds": 10**30}, "lease_seconds", "less than or equal"),
    ({"name": "ok", "flows": None}, "flows", "may not be null"),
    ({"name": "ok", "teams": [99999]}, "teams", "does not exist"),
])
def test_bad_queue_input_is_a_400_naming_the_field(api, body, field, words):
    response = api.post("/api/v1/queues/", body, format="json")
    assert response.status_code == 400 and words in str(response.json()[field])
