"""FIFO per flow (one at a time in received order; a failed message holds the queue or is
skipped) and the concurrency cap: a claim that must wait is refused, and the message ahead
wakes it when it finishes."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import Flow
from flows.services import claim_message, run_message
from listeners.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def queued(flow, user, body: dict, seconds: int) -> Message:
    message = Message(listener=flow.listener, flow=flow, owner=user, method="POST", status="queued",
                      received_at=timezone.now() - timedelta(seconds=100 - seconds))
    message.store_body(json.dumps(body).encode())
    message.save()
    return message


def test_fifo_runs_in_received_order_whatever_order_deliveries_come(user, async_flow):
    Flow.objects.filter(pk=async_flow.pk).update(ordering="fifo")
    first, second, third = (queued(async_flow, user, {"id": i, "name": {"family": f"F{i}"}}, i) for i in (1, 2, 3))
    assert run_message(third.pk) is None and run_message(second.pk) is None  # must wait for the first
    run_message(first.pk)  # then each finished one wakes the next (tasks run inline in tests)
    statuses = {m.pk: m.status for m in Message.objects.all()}
    assert set(statuses.values()) == {"succeeded"}
    runs = [run.message_id for run in async_flow.runs.order_by("started_at", "id")]
    assert runs == [first.pk, second.pk, third.pk]


def test_fifo_holds_on_a_failed_message_until_it_is_cancelled(api, user, async_flow):
    Flow.objects.filter(pk=async_flow.pk).update(ordering="fifo")
    bad = queued(async_flow, user, {"id": "not a number", "name": {"family": "Bad"}}, 1)
    good = queued(async_flow, user, {"id": 2, "name": {"family": "Good"}}, 2)
    run_message(bad.pk)
    assert Message.objects.get(pk=bad.pk).status == "failed"
    assert run_message(good.pk) is None and Message.objects.get(pk=good.pk).status == "queued"
    assert api.post(f"/api/v1/messages/{bad.pk}/cancel").status_code == 200
    assert Message.objects.get(pk=good.pk).status == "succeeded"  # cancelling let the queue move on


def test_fifo_skip_moves_past_a_failed_message(user, async_flow):
    Flow.objects.filter(pk=async_flow.pk).update(ordering="fifo_skip")
    bad = queued(async_flow, user, {"id": "x", "name": {"family": "Bad"}}, 1)
    good = queued(async_flow, user, {"id": 2, "name": {"family": "Good"}}, 2)
    run_message(bad.pk)
    assert Message.objects.get(pk=bad.pk).status == "failed"
    assert Message.objects.get(pk=good.pk).status == "succeeded"


def test_the_concurrency_cap_refuses_a_claim_past_it(user, async_flow):
    Flow.objects.filter(pk=async_flow.pk).update(concurrency=1)
    busy = queued(async_flow, user, {"id": 1, "name": {"family": "A"}}, 1)
    Message.objects.filter(pk=busy.pk).update(status="running")
    other = queued(async_flow, user, {"id": 2, "name": {"family": "B"}}, 2)
    assert claim_message(other.pk) is False
    Message.objects.filter(pk=busy.pk).update(status="succeeded")
    assert claim_message(other.pk) is True
