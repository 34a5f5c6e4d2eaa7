"""A worker's task goes on with messages nobody was told of yet: it claims them itself (no broker
round trip), only plain flows' and due ones, each once, and hands back what a broken run left."""
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from flows import services as flow_services
from flows import tasks
from flows.models import Flow, FlowRun
from flows.services import run_messages, take_undispatched
from listeners.models import Message
from tests.flows.test_runner_and_sweeper import queued

pytestmark = pytest.mark.django_db


def copy_of(flow, **fields) -> Flow:
    """Another flow like `flow`, without a listener, with `fields` changed."""
    other = Flow.objects.get(pk=flow.pk)
    other.pk, other.listener, other.name = None, None, f"copy of {flow.name}"
    for name, value in fields.items():
        setattr(other, name, value)
    other.save()
    return other


def state(message) -> tuple:
    return Message.objects.values_list("status", "attempts").get(pk=message.pk)


def test_a_task_goes_on_with_due_plain_messages_nobody_was_told_of_oldest_first(async_flow):
    own, first, second = queued(async_flow), queued(async_flow), queued(async_flow)
    told = queued(async_flow, enqueued_at=timezone.now())  # the dispatcher published it: its task runs it
    later = queued(async_flow, next_attempt_at=timezone.now() + timedelta(minutes=5))
    fifo = queued(copy_of(async_flow, ordering="fifo"))  # its order is kept by run_message, one at a time
    capped = queued(copy_of(async_flow, concurrency=1))
    assert run_messages([str(own.pk)], take_more=5.0) == 3
    runs = FlowRun.objects.order_by("started_at", "pk")
    assert [r.message_id for r in runs] == [own.pk, first.pk, second.pk]
    assert {state(m) for m in (own, first, second)} == {("succeeded", 1)}
    assert Message.objects.get(pk=first.pk).enqueued_at is not None  # the dispatcher will not publish it again
    for message in (told, later, fifo, capped):
        assert state(message) == ("queued", 0)


def test_without_time_to_take_more_a_task_runs_only_its_own(async_flow):
    own, other = queued(async_flow), queued(async_flow)
    assert run_messages([str(own.pk)]) == 1
    assert state(own) == ("succeeded", 1) and state(other) == ("queued", 0)


def test_a_task_stops_taking_when_its_time_is_up_though_more_keep_coming(async_flow, monkeypatch):
    clock = iter(range(100))  # each look at the clock is a second later
    monkeypatch.setattr(flow_services, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    real = flow_services.take_undispatched

    def steady_stream(limit, now):
        queued(async_flow)  # one more arrives before every look
        return real(limit, now)

    monkeypatch.setattr(flow_services, "take_undispatched", steady_stream)
    own = queued(async_flow)
    # The deadline is read at 0 (0 + 2.5); looks at 1 and 2 take one each; at 3 the task ends.
    assert run_messages([str(own.pk)], take_more=2.5) == 3
    assert Message.objects.filter(status="succeeded").count() == 3
    assert Message.objects.filter(status="queued", enqueued_at=None).count() == 0  # nothing left behind claimed


def test_a_task_takes_a_few_at_a_time(async_flow):
    waiting = [queued(async_flow) for _ in range(flow_services.TAKE_MORE_BATCH + 2)]
    taken = take_undispatched(flow_services.TAKE_MORE_BATCH, timezone.now())
    assert list(taken) == [str(m.pk) for m in waiting[:flow_services.TAKE_MORE_BATCH]]
    assert {state(m) for m in waiting[:flow_services.TAKE_MORE_BATCH]} == {("running", 1)}
    assert {state(m) for m in waiting[flow_services.TAKE_MORE_BATCH:]} == {("queued", 0)}


def test_when_a_taken_run_breaks_off_the_rest_taken_go_back_for_the_dispatcher(async_flow, monkeypatch):
    own, first, second, third = (queued(async_flow) for _ in range(4))
    real = flow_services._run_claimed

    def first_breaks(message, flow, carried=None):
        if message.pk == first.pk:
            raise RuntimeError("the worker's database connection broke")
        return real(message, flow, carried)

    monkeypatch.setattr(flow_services, "_run_claimed", first_breaks)
    with pytest.raises(RuntimeError):
        run_messages([str(own.pk)], take_more=5.0)
    assert state(own) == ("succeeded", 1)
    assert state(first) == ("running", 1)  # the broken run: its lease lapses, as for a lost worker
    for message in (second, third):  # never started: queued again, untried, and left to be published
        assert Message.objects.values_list("status", "attempts", "enqueued_at").get(pk=message.pk) == ("queued", 0, None)


def test_only_a_task_a_worker_runs_takes_more(async_flow, settings):
    settings.PUSHFLOW_WORKER_TAKE_MORE_SECONDS = 5.0
    own, other = queued(async_flow), queued(async_flow)
    tasks.run_message_task(str(own.pk))  # called as a function
    tasks.run_messages_task.apply(args=[[str(own.pk)]])  # eagerly, inside a caller's request
    assert state(own) == ("succeeded", 1) and state(other) == ("queued", 0)
    by_a_worker = SimpleNamespace(request=SimpleNamespace(called_directly=False, is_eager=False))
    assert tasks._take_more(by_a_worker) == 5.0


@pytest.mark.django_db(transaction=True)
def test_two_processes_taking_at_once_never_take_the_same_message(async_flow):
    waiting = {str(queued(async_flow).pk) for _ in range(40)}
    taken, errors = [[], []], []

    def take(into: list) -> None:
        try:
            while found := take_undispatched(3, timezone.now()):
                into.extend(found)
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(into,)) for into in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(taken[0] + taken[1]) == sorted(waiting)  # each taken, and once
