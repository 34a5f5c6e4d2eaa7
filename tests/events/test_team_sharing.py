"""Subscriptions and queues shared with teams (Django groups): members read a subscription's delivery log
and poll a queue (next, ack), only the owner changes either, outsiders see nothing, administrators see all."""
import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from events.models import Delivery, Queue, QueueItem, Subscription
from flows.services import run_message
from listeners.models import Message
from tests.conftest import PASSWORD, token_for

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


def run(flow, capture):
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/x", status="queued")
    message.store_body(b'{"id": 7, "name": {"family": "Doe"}}')
    message.save()
    with capture(execute=True):
        return run_message(message.pk)


@pytest.fixture
def lab(user, make_user, async_flow, subscriber, django_capture_on_commit_callbacks):
    """alice owns a subscription and a queue on her flow and shares both with team "lab": bob is in lab, carol is not."""
    team = Group.objects.create(name="lab")
    alice, bob, carol = user, make_user("bob"), make_user("carol")
    alice.groups.add(team)
    bob.groups.add(team)
    alice_api = client_for(alice)
    made = alice_api.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.succeeded"],
                                                     "flows": [async_flow.pk], "teams": [team.pk]}, format="json")
    assert made.status_code == 201 and made.json()["teams"] == [team.pk], made.content
    queue = alice_api.post("/api/v1/queues/", {"name": "erp", "flows": [async_flow.pk]}, format="json")
    assert queue.status_code == 201, queue.content
    shared = alice_api.patch("/api/v1/queues/erp/", {"teams": [team.pk]}, format="json")
    assert shared.status_code == 200 and shared.json()["teams"] == [team.pk], shared.content
    run(async_flow, django_capture_on_commit_callbacks)
    return {"team": team, "alice": alice, "bob": bob, "carol": carol, "flow": async_flow,
            "subscription": Subscription.objects.get(pk=made.json()["id"])}


def test_a_member_reads_a_shared_subscription_and_its_delivery_log(lab, subscriber):
    pk = lab["subscription"].pk
    bob = client_for(lab["bob"])
    assert [s["id"] for s in bob.get("/api/v1/subscriptions/").json()["results"]] == [pk]
    shown = bob.get(f"/api/v1/subscriptions/{pk}/")
    assert shown.status_code == 200 and "secret" not in shown.json()
    log = bob.get(f"/api/v1/subscriptions/{pk}/deliveries/").json()
    assert log["count"] == 1 and log["results"][0]["event"] == "run.succeeded"
    assert log["results"][0]["attempt_log"][0]["status_code"] == 200


def test_a_member_cannot_change_a_shared_subscription(lab, subscriber):
    subscription = lab["subscription"]
    bob = client_for(lab["bob"])
    delivery = Delivery.objects.get(subscription=subscription)
    assert bob.patch(f"/api/v1/subscriptions/{subscription.pk}/", {"url": "https://evil.example.com/"},
                     format="json").status_code == 403
    assert bob.patch(f"/api/v1/subscriptions/{subscription.pk}/", {"enabled": False}, format="json").status_code == 403
    assert bob.delete(f"/api/v1/subscriptions/{subscription.pk}/").status_code == 403
    assert bob.post(f"/api/v1/subscriptions/{subscription.pk}/deliveries/{delivery.pk}/redeliver").status_code == 403
    assert bob.post(f"/api/v1/subscriptions/{subscription.pk}/rotate-secret").status_code == 403
    subscription.refresh_from_db()
    assert (subscription.url, subscription.enabled, subscription.previous_secret_expires_at) == (subscriber.url, True, None)
    assert len(subscriber.requests) == 1  # nothing sent again


def test_a_member_polls_a_shared_queue_but_cannot_change_it(lab):
    bob = client_for(lab["bob"])
    item = bob.get("/api/v1/queues/erp/next")
    assert item.status_code == 200 and item.json()["flow"] == lab["flow"].pk
    assert bob.get("/api/v1/queues/erp/next").status_code == 204
    assert bob.post(f"/api/v1/queues/erp/ack/{item.json()['id']}").status_code == 204
    assert QueueItem.objects.count() == 0
    assert bob.patch("/api/v1/queues/erp/", {"lease_seconds": 5}, format="json").status_code == 403
    assert bob.delete("/api/v1/queues/erp/").status_code == 403
    assert Queue.objects.get(name="erp").lease_seconds == 300


def test_outsiders_see_neither_and_cannot_share_into_a_team(lab, subscriber):
    pk = lab["subscription"].pk
    carol = client_for(lab["carol"])
    assert carol.get("/api/v1/subscriptions/").json()["count"] == 0
    assert carol.get(f"/api/v1/subscriptions/{pk}/deliveries/").status_code == 404
    assert carol.get("/api/v1/queues/").json()["count"] == 0
    assert carol.get("/api/v1/queues/erp/next").status_code == 404
    assert carol.post("/api/v1/queues/erp/ack/00000000-0000-0000-0000-000000000000").status_code == 404
    refused = carol.post("/api/v1/queues/", {"name": "carols", "teams": [lab["team"].pk]}, format="json")
    assert refused.status_code == 400 and "teams" in refused.json()
    refused = carol.post("/api/v1/subscriptions/", {"url": subscriber.url, "events": ["run.failed"],
                                                    "teams": [lab["team"].pk]}, format="json")
    assert refused.status_code == 400 and "teams" in refused.json()


def test_the_pages_follow_the_same_sharing(client, lab):
    subscription = lab["subscription"]
    delivery = Delivery.objects.get(subscription=subscription)
    assert client.login(username="bob", password=PASSWORD)
    page = client.get("/subscriptions/").content.decode()
    assert lab["flow"].name in page and delivery.msg_id in page and "Redeliver" not in page
    assert client.post(f"/subscriptions/{subscription.pk}/deliveries/{delivery.pk}/redeliver").status_code == 403
    assert "<code>erp</code>" in client.get("/queues/").content.decode()
    client.logout()
    assert client.login(username="carol", password=PASSWORD)
    assert delivery.msg_id not in client.get("/subscriptions/").content.decode()
    assert "<code>erp</code>" not in client.get("/queues/").content.decode()
    client.logout()
    assert client.login(username="alice", password=PASSWORD)
    assert "Redeliver" in client.get("/subscriptions/").content.decode()


def test_admins_see_every_subscription_and_queue(lab, admin_user):
    admin = client_for(admin_user)
    assert admin.get("/api/v1/subscriptions/").json()["count"] == 1
    assert admin.get("/api/v1/queues/erp/").status_code == 200
