"""The subscriptions page (delivery log, why a subscription was disabled, redeliver) and the queues page (depth)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from events.models import Delivery, DeliveryAttempt, Output, Queue, QueueItem, Subscription
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_subscriptions_page_shows_the_log_and_why_it_was_disabled(client, user, other_user, async_flow):
    mine = Subscription.objects.create(owner=user, url="https://erp.example.com/hook", events=["run.failed"], enabled=False,
                                       disabled_reason="5 deliveries in a row failed every retry; the last one: answered 503")
    Subscription.objects.create(owner=other_user, url="https://hidden.example.com/hook", events=["run.failed"])
    delivery = Delivery.objects.create(subscription=mine, msg_id="msg_abc", event="run.failed", status="failed", attempts=2)
    DeliveryAttempt.objects.create(delivery=delivery, number=1, status_code=503, duration_ms=42, error="answered 503: busy")
    DeliveryAttempt.objects.create(delivery=delivery, number=2, status_code=200, duration_ms=7, succeeded=True)
    assert client.login(username=user.username, password=PASSWORD)
    page = client.get("/subscriptions/").content.decode()
    assert "erp.example.com" in page and "hidden.example.com" not in page
    assert "answered 503" in page and "msg_abc" in page and "42 ms" in page and "#2" in page
    assert 'href="/subscriptions/"' in page and 'href="/queues/"' in page  # in the navigation


def test_redeliver_from_the_page_is_refused_for_someone_elses_delivery(client, user, other_user):
    theirs = Subscription.objects.create(owner=other_user, url="https://x.example.com/", events=["run.failed"])
    delivery = Delivery.objects.create(subscription=theirs, msg_id="msg_x", event="run.failed", status="failed")
    assert client.login(username=user.username, password=PASSWORD)
    assert client.post(f"/subscriptions/{theirs.pk}/deliveries/{delivery.pk}/redeliver").status_code == 404


def test_queues_page_shows_depth(client, user, other_user, async_flow):
    queue = Queue.objects.create(owner=user, name="erp-invoices", lease_seconds=120)
    queue.flows.set([async_flow])
    Queue.objects.create(owner=other_user, name="their-queue")
    output = Output.objects.create(owner=user, flow=async_flow, path="x.csv")
    QueueItem.objects.create(queue=queue, output=output)
    QueueItem.objects.create(queue=queue, output=output)
    QueueItem.objects.create(queue=queue, output=output, lease_expires_at=timezone.now() + timedelta(minutes=1))
    assert client.login(username=user.username, password=PASSWORD)
    page = client.get("/queues/").content.decode()
    assert "erp-invoices" in page and "their-queue" not in page and async_flow.name in page
    assert '<td class="available">2</td><td class="leased">1</td>' in page


def test_the_owner_rotates_the_secret_from_the_page_and_sees_it_once(client, user, other_user):
    from django.contrib.auth.models import Group

    from accounts.models import AuditEntry
    from events.services import rotate_secret

    mine = Subscription.objects.create(owner=user, url="https://erp.example.com/hook", events=["run.failed"])
    rotate_secret(mine)  # its first secret
    first = Subscription.objects.get(pk=mine.pk).secret
    team = Group.objects.create(name="erp")
    user.groups.add(team)
    other_user.groups.add(team)
    mine.teams.add(team)
    assert client.login(username=user.username, password=PASSWORD)
    page = client.post(f"/subscriptions/{mine.pk}/rotate-secret").content.decode()
    new = Subscription.objects.get(pk=mine.pk)
    assert new.secret != first and new.secret.startswith("whsec_")
    assert f'<code id="new-secret-{mine.pk}">{new.secret}</code>' in page and "still signs deliveries until" in page
    assert new.secret not in client.get("/subscriptions/").content.decode()  # shown that once only
    audit = AuditEntry.objects.get(user=user, object_id=str(mine.pk))
    assert audit.action == "update" and "secret" in audit.changes["secrets"][1] and new.secret not in str(audit.changes)
    assert client.get(f"/subscriptions/{mine.pk}/rotate-secret").status_code == 405
    client.logout()
    assert client.login(username=other_user.username, password=PASSWORD)  # a team member reads, does not rotate
    assert "Rotate signing secret" not in client.get("/subscriptions/").content.decode()
    assert client.post(f"/subscriptions/{mine.pk}/rotate-secret").status_code == 403
    assert client.post("/subscriptions/999999/rotate-secret").status_code == 404
    assert Subscription.objects.get(pk=mine.pk).secret == new.secret
