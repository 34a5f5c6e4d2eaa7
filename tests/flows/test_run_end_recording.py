"""How a run's end is recorded: the run row and its message's row together, all or nothing.

A run nobody subscribes to, of a flow that neither orders nor caps its runs, records both
ends as one statement on PostgreSQL (one round trip, committing by itself); a run someone
hears of records its delivery in the same transaction as its end."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events.models import Delivery, Subscription
from flows.models import FlowRun
from flows.services import run_message
from listeners.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def queued(flow, body=b'{"id": 1, "name": {"family": "Doe"}}') -> Message:
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/listen/x",
                      status=Message.Status.QUEUED)
    message.store_body(body)
    message.save()
    return message


def end_statements(queries) -> list[str]:
    """The statements that set a row's end (the claim only reads `finished_at` back)."""
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].startswith(("UPDATE", "WITH")) and '"finished_at" =' in q["sql"]]


def test_a_run_nobody_hears_of_records_both_ends_in_one_statement_on_postgresql(async_flow):
    message = queued(async_flow)
    with CaptureQueriesContext(connection) as queries:
        run = run_message(message.pk)
    statements = end_statements(queries)
    if connection.vendor == "postgresql":
        assert len(statements) == 1 and statements[0].startswith("WITH")
        assert '"flows_flowrun"' in statements[0] and '"listeners_message"' in statements[0]
    else:
        assert len(statements) == 2
    message.refresh_from_db()
    run.refresh_from_db()
    assert (message.status, run.status, run.records_out) == ("succeeded", "succeeded", 1)
    assert message.finished_at is not None and run.finished_at is not None


def test_a_failed_run_records_its_retry_the_same_way(async_flow):
    message = queued(async_flow, b"not json")
    run = run_message(message.pk)
    message.refresh_from_db()
    run.refresh_from_db()
    assert run.status == "failed" and "JSON" in run.error
    assert message.status == "failed" and message.finished_at is not None  # bad data is not retried


def test_a_run_someone_hears_of_records_its_delivery_with_its_end(async_flow, user):
    Subscription.objects.create(owner=user, url="https://erp.example.com/hook", events=["run.succeeded"])
    message = queued(async_flow)
    with CaptureQueriesContext(connection) as queries:
        run = run_message(message.pk)
    assert not [s for s in end_statements(queries) if s.startswith("WITH")]
    assert Delivery.objects.filter(event="run.succeeded").count() == 1
    message.refresh_from_db()
    assert FlowRun.objects.get(pk=run.pk).status == message.status == "succeeded"


def test_a_run_of_an_ordered_flow_goes_through_the_transaction_that_wakes_the_next(async_flow):
    async_flow.ordering = "fifo"
    async_flow.save()
    message = queued(async_flow)
    with CaptureQueriesContext(connection) as queries:
        run_message(message.pk)
    assert not [s for s in end_statements(queries) if s.startswith("WITH")]
    message.refresh_from_db()
    assert message.status == "succeeded"
