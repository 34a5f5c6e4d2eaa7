"""The runner and the sweeper: claim once, record every run, retry on transport faults,
re-publish what the broker lost, take back what a lost worker held."""
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connections.transports import TransportError
from flows import services as flow_services
from flows.leases import LeaseKeeper, leases
from flows.models import Flow, FlowRun
from flows.services import claim_message, run_message, run_messages
from listeners import services as listener_services
from listeners.dispatcher import DISPATCH_BATCH
from listeners.models import Message
from listeners.services import requeue_due_messages, sweep_queued_messages
from tests.flows.test_sync_runs import written

pytestmark = pytest.mark.django_db


def queued(flow, body=b'{"id": 1, "name": {"family": "Doe"}}', **fields) -> Message:
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/listen/x",
                      status=Message.Status.QUEUED, **fields)
    message.store_body(body)
    message.save()
    return message


def test_a_message_is_claimed_once(async_flow):
    message = queued(async_flow)
    assert claim_message(message.pk) is True
    assert claim_message(message.pk) is False


def test_a_duplicate_delivery_runs_the_flow_once(async_flow):
    message = queued(async_flow)
    assert run_message(message.pk) is not None
    assert run_message(message.pk) is None
    assert FlowRun.objects.filter(message=message).count() == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("succeeded", 1)


def test_a_message_due_later_is_not_claimed_yet(async_flow):
    message = queued(async_flow, next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert claim_message(message.pk) is False


def test_bad_records_are_rejected_with_reasons_under_reject_record(async_flow):
    async_flow.mapping = {"records": "items[*]", "fields": [{"target": "id", "source": "id", "type": "integer"}]}
    async_flow.save()
    message = queued(async_flow, body=b'{"items": [{"id": 1}, {"id": "x"}, {"id": 3}]}')
    run = run_message(message.pk)
    assert (run.status, run.records_in, run.records_out, run.records_rejected) == ("succeeded", 3, 2, 1)
    assert any("rejected record 2" in line and "integer" in line for line in run.log)


@pytest.mark.parametrize("policy", ["reject_payload", "halt"])
def test_one_bad_record_fails_the_run_under_stricter_policies(async_flow, policy):
    async_flow.on_error = policy
    async_flow.mapping = {"records": "items[*]", "fields": [{"target": "id", "source": "id", "type": "integer"}]}
    async_flow.save()
    message = queued(async_flow, body=b'{"items": [{"id": 1}, {"id": "x"}]}')
    run = run_message(message.pk)
    message.refresh_from_db()
    assert run.status == "failed" and message.status == "failed"
    assert "record 2" in message.error


def test_a_retryable_delivery_failure_requeues_with_a_retry_time(async_flow, monkeypatch):
    def unavailable(*args, **kwargs):
        raise TransportError("disk full", retryable=True)

    monkeypatch.setattr(type(async_flow.destination_connection.transport), "write", unavailable)
    message = queued(async_flow)
    run = run_message(message.pk)
    message.refresh_from_db()
    assert run.status == "failed" and "disk full" in run.error
    assert message.status == "queued" and message.next_attempt_at > timezone.now()
    assert "retrying" in message.error


def test_the_last_attempt_fails_the_message(async_flow, monkeypatch, settings):
    settings.PUSHFLOW_MAX_ATTEMPTS = 1

    def unavailable(*args, **kwargs):
        raise TransportError("disk full", retryable=True)

    monkeypatch.setattr(type(async_flow.destination_connection.transport), "write", unavailable)
    message = queued(async_flow)
    run_message(message.pk)
    message.refresh_from_db()
    assert message.status == "failed" and "disk full" in message.error


def test_sweeper_republishes_what_the_broker_lost(async_flow, monkeypatch, settings):
    settings.PUSHFLOW_REQUEUE_AFTER_SECONDS = 30
    fresh = queued(async_flow, enqueued_at=timezone.now())
    lost = queued(async_flow, enqueued_at=timezone.now() - timedelta(minutes=5))
    never = queued(async_flow, enqueued_at=None)
    published = []
    monkeypatch.setattr(listener_services, "publish_many", lambda ids: published.extend(ids) or True)
    assert sweep_queued_messages() == 2
    assert set(published) == {str(lost.pk), str(never.pk)} and str(fresh.pk) not in published


def test_sweeper_publishes_in_batches_and_stops_at_the_first_failed_publish(async_flow, monkeypatch):
    for _ in range(2 * DISPATCH_BATCH + 5):
        queued(async_flow)
    calls = []
    monkeypatch.setattr(listener_services, "publish_many", lambda ids: calls.append(list(ids)) or len(calls) < 2)
    assert sweep_queued_messages() == DISPATCH_BATCH  # the first batch went; the second failed, the rest waits
    assert [len(batch) for batch in calls] == [DISPATCH_BATCH, DISPATCH_BATCH]


def test_a_run_held_by_a_lost_worker_is_taken_back_then_failed_after_the_last_attempt(async_flow, settings):
    settings.PUSHFLOW_RUN_LEASE_SECONDS = 60
    settings.PUSHFLOW_MAX_ATTEMPTS = 2
    long_ago = timezone.now() - timedelta(minutes=10)
    retry = queued(async_flow)
    Message.objects.filter(pk=retry.pk).update(status="running", claimed_at=long_ago, attempts=1)
    poison = queued(async_flow)
    Message.objects.filter(pk=poison.pk).update(status="running", claimed_at=long_ago, attempts=2)
    due = requeue_due_messages()
    retry.refresh_from_db()
    poison.refresh_from_db()
    assert retry.status == "queued" and retry.pk in due
    assert poison.status == "failed" and "too many times" in poison.error


def test_a_claim_renewed_by_its_running_process_is_not_taken_back(async_flow, settings):
    settings.PUSHFLOW_RUN_LEASE_SECONDS = 60
    message = queued(async_flow)
    assert claim_message(message.pk)
    long_ago = timezone.now() - timedelta(minutes=10)
    with leases.held(message.pk):  # a run going on longer than the lease
        Message.objects.filter(pk=message.pk).update(claimed_at=long_ago)
        assert leases.renew() == 1
        assert message.pk not in requeue_due_messages()
    message.refresh_from_db()
    assert message.status == "running" and message.claimed_at > long_ago
    assert leases.renew() == 0  # once the run ends, nothing of it is held


def test_a_run_whose_claim_was_taken_back_does_not_record_its_end(async_flow):
    message = queued(async_flow)
    assert claim_message(message.pk)
    mine = Message.objects.get(pk=message.pk)
    # Meanwhile the sweeper took the claim for lost and another worker claimed the message again.
    Message.objects.filter(pk=message.pk).update(attempts=2)
    flow_services._finish_message(mine, None, async_flow)
    message.refresh_from_db()
    assert message.status == "running"


@pytest.mark.django_db(transaction=True)
def test_the_lease_thread_renews_claims_while_a_run_goes_on(async_flow, settings):
    settings.PUSHFLOW_RUN_LEASE_SECONDS = 1.0  # renewed every quarter second
    message = queued(async_flow)
    assert claim_message(message.pk)
    long_ago = timezone.now() - timedelta(minutes=10)
    Message.objects.filter(pk=message.pk).update(claimed_at=long_ago)
    keeper = LeaseKeeper()
    with keeper.held(message.pk):
        deadline = time.monotonic() + 10
        while Message.objects.get(pk=message.pk).claimed_at == long_ago and time.monotonic() < deadline:
            time.sleep(0.05)
    assert Message.objects.get(pk=message.pk).claimed_at > long_ago


def test_a_task_of_several_messages_runs_each_once_in_order(async_flow, tmp_path):
    messages = [queued(async_flow, b'{"id": %d, "name": {"family": "Doe"}}' % i) for i in range(5)]
    ids = [str(m.pk) for m in messages]
    assert run_messages(ids) == 5
    assert run_messages(ids) == 0  # a duplicate delivery of the task
    runs = list(FlowRun.objects.filter(message__in=messages).order_by("started_at", "pk"))
    assert [str(r.message_id) for r in runs] == ids
    assert {r.status for r in runs} == {"succeeded"}
    assert set(Message.objects.filter(pk__in=ids).values_list("status", "attempts")) == {("succeeded", 1)}


def commits(queries: list[dict]) -> list[list[str]]:
    """The rows each commit wrote (see `written`): a statement outside BEGIN ... COMMIT commits by itself."""
    groups, transaction = [], None
    for query in queries:
        sql = query["sql"]
        if sql.startswith("BEGIN"):
            transaction = []
        elif sql == "COMMIT":
            groups.append(transaction)
            transaction = None
        elif written(sql):
            if transaction is None:
                groups.append(written(sql))
            else:
                transaction += written(sql)
    return groups


@pytest.mark.django_db(transaction=True)
def test_a_task_commits_each_runs_end_together_with_the_next_runs_start(async_flow):
    messages = [queued(async_flow) for _ in range(3)]
    run_messages([str(queued(async_flow).pk)])  # the flow's lookups cached, its mapping compiled
    with CaptureQueriesContext(connection) as queries:
        assert run_messages([str(m.pk) for m in messages]) == 3
    groups = commits(queries.captured_queries)
    start, end = ["INSERT flows_flowrun"], ["UPDATE flows_flowrun", "UPDATE listeners_message"]
    assert groups == [["UPDATE listeners_message"], start, end + start, end + start, end]  # the claim, then the runs
    if connection.vendor == "postgresql":  # each commit one statement: a round trip per run, and one more per task
        assert [q["sql"].split()[0] for q in queries.captured_queries if written(q["sql"])] == [
            "UPDATE", "INSERT", "WITH", "WITH", "WITH"]
    for message in messages:
        message.refresh_from_db()
        assert (message.status, message.runs.get().status) == ("succeeded", "succeeded")


def test_a_task_mixing_flows_that_order_their_runs_and_messages_not_due(async_flow):
    ordered = Flow.objects.get(pk=async_flow.pk)
    ordered.pk, ordered.listener, ordered.name, ordered.ordering = None, None, "fifo copy", "fifo"
    ordered.save()
    first, second = queued(ordered), queued(ordered)
    plain, later = queued(async_flow), queued(async_flow, next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert run_messages([str(m.pk) for m in (first, plain, second, later)]) == 3
    for message in (first, second, plain):
        message.refresh_from_db()
        assert message.status == "succeeded"
    later.refresh_from_db()
    assert later.status == "queued" and not FlowRun.objects.filter(message=later).exists()


def test_the_claims_of_a_task_are_kept_alive_until_each_message_has_run(async_flow, monkeypatch):
    messages = [queued(async_flow) for _ in range(3)]
    held_while_running = []
    real = flow_services._execute_run

    def spy(flow, message, **options):
        held_while_running.append(sorted(str(pk) for pk in leases.holding()))
        return real(flow, message, **options)

    monkeypatch.setattr(flow_services, "_execute_run", spy)
    run_messages([str(m.pk) for m in messages])
    everyone = sorted(str(m.pk) for m in messages)
    assert held_while_running == [everyone] * 3  # the later ones are claimed, so they wait under lease too
    assert leases.holding() == []


def test_when_a_run_breaks_off_its_task_the_messages_not_yet_run_go_back_untried(async_flow, monkeypatch):
    messages = [queued(async_flow) for _ in range(3)]
    real = flow_services._run_claimed

    def second_breaks(message, flow, carried=None):
        if message.pk == messages[1].pk:
            raise RuntimeError("the worker's database connection broke")
        return real(message, flow, carried)

    monkeypatch.setattr(flow_services, "_run_claimed", second_breaks)
    with pytest.raises(RuntimeError):
        run_messages([str(m.pk) for m in messages])
    states = [Message.objects.values_list("status", "attempts", "enqueued_at").get(pk=m.pk) for m in messages]
    assert states[0][:2] == ("succeeded", 1)  # ran before the break
    assert states[1][:2] == ("running", 1)  # the broken run itself: its lease lapses, as for a lost worker
    assert states[2] == ("queued", 0, None)  # never started: queued again at once, no attempt counted


def test_a_task_of_no_messages_runs_nothing():
    assert run_messages([]) == 0
