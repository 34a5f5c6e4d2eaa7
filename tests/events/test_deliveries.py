"""Webhook deliveries: signed per Standard Webhooks, retried with backoff, logged per attempt, redelivered
by hand, and a subscription that keeps failing is disabled with its reason."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from events import interest
from events.models import Delivery, Subscription
from events.services import emit_run_finished, retry_due_deliveries
from flows.models import FlowRun
from flows.services import run_message
from listeners.models import Message
from listeners.signatures import SignatureError, verify_standard
from tests.conftest import token_for

pytestmark = pytest.mark.django_db


def queued(flow, body=b'{"id": 7, "name": {"family": "Doe"}}') -> Message:
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/listen/x",
                      status=Message.Status.QUEUED)
    message.store_body(body)
    message.save()
    return message


def run_and_deliver(flow, capture, body=b'{"id": 7, "name": {"family": "Doe"}}') -> FlowRun:
    message = queued(flow, body)
    with capture(execute=True):
        return run_message(message.pk)


def verify(request, secret):
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request["headers"].items()}
    verify_standard(meta, request["body"], [secret], tolerance=300, now=time.time())


def make_due(delivery_id):
    Delivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_run_is_sent_signed_per_standard_webhooks(async_flow, user, subscriber, make_subscription,
                                                    django_capture_on_commit_callbacks):
    _, secret = make_subscription(user, ["run.succeeded"], [async_flow])
    run = run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    assert len(subscriber.requests) == 1
    request = subscriber.requests[0]
    verify(request, secret)
    assert request["headers"]["webhook-id"].startswith("msg_")
    with pytest.raises(SignatureError):
        verify({**request, "body": request["body"].replace(b'"records_out":1', b'"records_out":2')}, secret)
    payload = subscriber.payloads()[0]
    assert payload["type"] == "run.succeeded"
    data = payload["data"]
    assert (data["flow"], data["run"], data["message"]) == (async_flow.pk, run.pk, str(run.message_id))
    assert (data["records_in"], data["records_out"], data["records_rejected"]) == (1, 1, 0)


def test_500_twice_then_200_is_one_success_and_two_logged_failures(async_flow, user, subscriber, make_subscription, api,
                                                                    django_capture_on_commit_callbacks):
    subscription, secret = make_subscription(user, ["run.succeeded"])
    subscriber.script = [500, 500, 200]
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get(subscription=subscription)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    # The second try waits its backoff: nothing is due yet.
    assert retry_due_deliveries() == 0
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=50)
    for _ in range(2):
        make_due(delivery.pk)
        assert retry_due_deliveries() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 3, 200)
    assert [r["status"] for r in subscriber.requests] == [500, 500, 200]
    assert len({r["headers"]["webhook-id"] for r in subscriber.requests}) == 1  # the receiver can drop repeats
    for request in subscriber.requests:
        verify(request, secret)
    log = api.get(f"/api/v1/subscriptions/{subscription.pk}/deliveries/").json()
    assert log["count"] == 1
    attempts = log["results"][0]["attempt_log"]
    assert [(a["number"], a["status_code"], a["succeeded"]) for a in attempts] == [(1, 500, False), (2, 500, False), (3, 200, True)]
    assert all(a["duration_ms"] >= 0 for a in attempts) and "answered 500" in attempts[0]["error"]
    assert retry_due_deliveries() == 0 and len(subscriber.requests) == 3


def test_an_unreachable_subscriber_is_logged_with_the_reason(async_flow, user, subscriber, make_subscription,
                                                             django_capture_on_commit_callbacks):
    subscription, _ = make_subscription(user, ["run.succeeded"])
    Subscription.objects.filter(pk=subscription.pk).update(url="http://127.0.0.1:1/hook")
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    attempt = Delivery.objects.get(subscription=subscription).attempt_log.get()
    assert attempt.status_code is None and "could not connect" in attempt.error


def test_a_subscription_failing_every_retry_is_disabled_with_its_reason(async_flow, user, subscriber, make_subscription,
                                                                        settings, api, django_capture_on_commit_callbacks):
    settings.PUSHFLOW_WEBHOOK_RETRY_SECONDS = [60]
    settings.PUSHFLOW_WEBHOOK_DISABLE_AFTER = 2
    subscription, _ = make_subscription(user, ["run.succeeded"])
    subscriber.script = [503]
    for _ in range(2):
        run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    for delivery in Delivery.objects.filter(subscription=subscription):
        make_due(delivery.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_due_deliveries() == 2
    assert set(Delivery.objects.values_list("status", flat=True)) == {"failed"}
    shown = api.get(f"/api/v1/subscriptions/{subscription.pk}/").json()
    assert shown["enabled"] is False and shown["consecutive_failures"] == 2
    assert "2 deliveries in a row failed" in shown["disabled_reason"] and "503" in shown["disabled_reason"]
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    assert len(subscriber.requests) == 4 and Delivery.objects.count() == 2  # nothing more for a disabled subscription
    # Its owner turns it on again: the reason and the count are cleared.
    assert api.patch(f"/api/v1/subscriptions/{subscription.pk}/", {"enabled": True}, format="json").status_code == 200
    subscription.refresh_from_db()
    assert (subscription.enabled, subscription.disabled_reason, subscription.consecutive_failures) == (True, "", 0)


def test_a_failure_then_a_success_resets_the_count(async_flow, user, subscriber, make_subscription, settings,
                                                   django_capture_on_commit_callbacks):
    settings.PUSHFLOW_WEBHOOK_RETRY_SECONDS = []
    subscription, _ = make_subscription(user, ["run.succeeded"])
    subscriber.script = [500, 200]
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    assert Subscription.objects.get(pk=subscription.pk).consecutive_failures == 1
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    assert Subscription.objects.get(pk=subscription.pk).consecutive_failures == 0


def test_manual_redelivery_sends_again_with_the_same_id(async_flow, user, subscriber, make_subscription, api,
                                                        django_capture_on_commit_callbacks):
    subscription, secret = make_subscription(user, ["run.succeeded"])
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    url = f"/api/v1/subscriptions/{subscription.pk}/deliveries/{delivery.pk}/redeliver"
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(url).status_code == 202
    assert len(subscriber.requests) == 2
    verify(subscriber.requests[1], secret)
    assert subscriber.requests[0]["headers"]["webhook-id"] == subscriber.requests[1]["headers"]["webhook-id"]
    assert [(a.number, a.manual) for a in delivery.attempt_log.all()] == [(1, False), (2, True)]
    assert api.post(f"/api/v1/subscriptions/{subscription.pk}/deliveries/999999/redeliver").status_code == 404


def test_failed_runs_and_filters(async_flow, user, subscriber, make_subscription, django_capture_on_commit_callbacks):
    make_subscription(user, ["run.failed"], [async_flow])
    make_subscription(user, ["run.succeeded"], entity_names=["invoice"])  # the flow's entity is its name
    run_and_deliver(async_flow, django_capture_on_commit_callbacks, body=b"not json")
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    assert [p["type"] for p in subscriber.payloads()] == ["run.failed"]
    assert "cannot read the payload" in subscriber.payloads()[0]["data"]["error"]


def test_a_subscription_to_all_flows_hears_only_flows_its_owner_may_see(async_flow, other_user, subscriber,
                                                                        make_subscription, django_capture_on_commit_callbacks):
    make_subscription(other_user, ["run.succeeded", "run.failed"])
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    assert subscriber.requests == [] and Delivery.objects.count() == 0


def test_a_rejected_request_is_sent_as_message_rejected(async_flow, user, subscriber, make_subscription, client,
                                                        django_capture_on_commit_callbacks):
    _, secret = make_subscription(user, ["message.rejected"], [async_flow])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/listen/patients", b"{}", content_type="application/json")
    assert response.status_code == 401
    verify(subscriber.requests[0], secret)
    data = subscriber.payloads("message.rejected")[0]["data"]
    assert (data["flow"], data["listener"], data["status_code"]) == (async_flow.pk, async_flow.listener_id, 401)
    assert Message.objects.get(pk=data["message"]).status == "rejected"
    # An accepted request is no rejection.
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/listen/patients", b'{"id": 1}', content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert len(subscriber.payloads("message.rejected")) == 1


def test_nobody_subscribed_costs_no_query_per_run(async_flow, settings, django_assert_num_queries):
    settings.PUSHFLOW_EVENTS_CACHE_SECONDS = 60
    run = FlowRun.objects.create(flow=async_flow, status="succeeded")
    interest.snapshot()  # loaded once per process and cache period
    with django_assert_num_queries(0):
        emit_run_finished(run, None)


def test_a_failed_redelivery_by_hand_does_not_count_towards_disabling(async_flow, user, subscriber, make_subscription, api,
                                                                      settings, django_capture_on_commit_callbacks):
    settings.PUSHFLOW_WEBHOOK_RETRY_SECONDS = []
    settings.PUSHFLOW_WEBHOOK_DISABLE_AFTER = 2
    subscription, _ = make_subscription(user, ["run.succeeded"])
    subscriber.script = [500]
    run_and_deliver(async_flow, django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/v1/subscriptions/{subscription.pk}/deliveries/{delivery.pk}/redeliver").status_code == 202
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    subscription.refresh_from_db()
    assert (subscription.enabled, subscription.consecutive_failures) == (True, 1)
