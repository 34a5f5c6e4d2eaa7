"""The dispatcher: accepted messages reach the broker from the worker side, oldest first, each once,
woken by the commit itself (LISTEN/NOTIFY on PostgreSQL, data_version on SQLite)."""
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from flows.models import Flow
from listeners import dispatcher
from listeners.models import Message
from listeners.services import accept_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # as in production: the web does not publish
    sent, lock = [], threading.Lock()

    def publish_many(ids):
        with lock:
            sent.append(list(ids))
        return True

    monkeypatch.setattr(dispatcher, "publish_many", publish_many)
    return sent


def accept(listener, n: int = 1) -> list[str]:
    ids = []
    for i in range(n):
        message = Message.fresh(method="POST", path=f"/listen/{listener.path}")
        accept_message(listener, message, b'{"id": %d}' % i, queue=True)
        ids.append(str(message.pk))
    return ids


def test_accepted_messages_wait_queued_and_unpublished_for_a_dispatcher(async_flow, published):
    ids = accept(async_flow.listener, 3)
    assert published == []
    assert set(Message.objects.filter(pk__in=ids).values_list("status", "enqueued_at")) == {("queued", None)}


def test_a_round_publishes_each_message_once_oldest_first(async_flow, published):
    ids = accept(async_flow.listener, 5)
    assert dispatcher.dispatch_once() == (5, True)
    assert published == [ids]
    assert all(m.enqueued_at is not None for m in Message.objects.filter(pk__in=ids))
    assert dispatcher.dispatch_once() == (0, True)
    assert published == [ids]


def test_a_round_shares_a_few_messages_out_between_the_workers_processes(async_flow, published):
    ids = accept(async_flow.listener, 5)
    assert dispatcher.dispatch_once(processes=2) == (5, True)
    assert published == [ids[:3], ids[3:]]  # two tasks: both processes run, the oldest first


def test_a_large_round_goes_in_tasks_of_at_most_a_batch(async_flow, published):
    assert [dispatcher.task_size(found, 2) for found in (0, 1, 2, 7, 50, 51, 500)] == [1, 1, 1, 4, 25, 25, 25]
    assert dispatcher.task_size(7, 1) == 7 and dispatcher.task_size(80, 4) == 20


def test_a_failed_publish_hands_the_messages_back_for_the_next_round(async_flow, published, monkeypatch):
    ids = accept(async_flow.listener, 2)
    monkeypatch.setattr(dispatcher, "publish_many", lambda batch: False)
    assert dispatcher.dispatch_once() == (2, False)
    assert set(Message.objects.filter(pk__in=ids).values_list("enqueued_at", flat=True)) == {None}


def test_a_message_waiting_for_its_retry_time_is_not_dispatched_early(async_flow, published):
    (mid,) = accept(async_flow.listener)
    Message.objects.filter(pk=mid).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert dispatcher.dispatch_once() == (0, True)


def test_a_round_takes_only_due_undispatched_queued_messages_up_to_its_limit(async_flow, published):
    due_retry, running, told, *fresh = accept(async_flow.listener, 6)
    Message.objects.filter(pk=due_retry).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    Message.objects.filter(pk=running).update(status=Message.Status.RUNNING)
    Message.objects.filter(pk=told).update(enqueued_at=timezone.now())
    assert dispatcher.claim_undispatched(limit=2) == [due_retry, fresh[0]]  # oldest first, as the ids read back
    assert dispatcher.claim_undispatched() == fresh[1:]
    assert dispatcher.claim_undispatched() == []
    assert Message.objects.get(pk=running).enqueued_at is None


def test_the_dispatcher_thread_is_woken_by_the_commit(async_flow, published):
    worker = dispatcher.start_dispatcher()
    try:
        time.sleep(0.3)  # let it reach its wait
        start = time.monotonic()
        (mid,) = accept(async_flow.listener)
        while not published and time.monotonic() - start < 5:
            time.sleep(0.002)
        assert published == [[mid]]
        # Woken by the commit, not by the idle timeout that looks anyway.
        assert time.monotonic() - start < dispatcher.IDLE_WAIT_SECONDS / 2
    finally:
        worker.stop()
        connection.close()


def test_the_dispatcher_thread_outlives_a_database_error(async_flow, published, monkeypatch):
    real, failures = dispatcher.claim_undispatched, []

    def flaky(limit=dispatcher.CLAIM_LIMIT, held_only=False):
        if not failures:
            failures.append(True)
            raise OperationalError("server closed the connection unexpectedly")
        return real(limit, held_only)

    monkeypatch.setattr(dispatcher, "claim_undispatched", flaky)
    monkeypatch.setattr(dispatcher, "ERROR_PAUSE_SECONDS", 0.05)
    (mid,) = accept(async_flow.listener)
    worker = dispatcher.start_dispatcher()
    try:
        deadline = time.monotonic() + 5
        while not published and time.monotonic() < deadline:
            time.sleep(0.01)
        assert failures == [True] and published == [[mid]]
    finally:
        worker.stop()
        connection.close()


def test_while_busy_the_dispatcher_lingers_so_one_task_carries_several_messages(async_flow, published, monkeypatch):
    monkeypatch.setattr(dispatcher, "BUSY_LINGER_SECONDS", 0.5)
    worker = dispatcher.start_dispatcher()
    try:
        time.sleep(0.3)  # let it reach its wait
        first = accept(async_flow.listener)
        deadline = time.monotonic() + 5
        while not published and time.monotonic() < deadline:
            time.sleep(0.002)
        assert published == [first]  # the first after a quiet spell goes at once
        following = []
        for _ in range(3):  # three commits, 50 ms apart, while it lingers
            time.sleep(0.05)
            following += accept(async_flow.listener)
        while len(published) < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert published == [first, following]  # one task for the three
    finally:
        worker.stop()
        connection.close()


def ordered_copy(flow) -> Flow:
    """Another flow like `flow`, on its own listener, that runs its messages in order (first in, first out)."""
    other = Flow.objects.get(pk=flow.pk)
    listener = other.listener
    listener.pk, listener.path, listener.name = None, "ordered", "ordered"
    listener.save()
    other.pk, other.listener, other.name, other.ordering = None, listener, "ordered copy", "fifo"
    other.save()
    return other


def test_a_held_round_publishes_only_the_messages_a_busy_process_does_not_take_itself(async_flow, published):
    plain = accept(async_flow.listener, 2)
    ordered = accept(ordered_copy(async_flow).listener, 2)
    assert dispatcher.dispatch_once(held_only=True) == (2, True)
    assert published == [ordered]
    assert set(Message.objects.filter(pk__in=plain).values_list("enqueued_at", flat=True)) == {None}
    assert dispatcher.dispatch_once() == (2, True)
    assert published == [ordered, plain]


def test_while_every_process_is_busy_a_round_holds_plain_messages_for_a_while_then_publishes_them(
        async_flow, published, monkeypatch):
    plain = accept(async_flow.listener)
    held = dispatcher.Dispatcher(1, busy=lambda: True)
    held._whole_round_at = time.monotonic()  # a round published everything just now
    assert held._round() == 0 and published == [] and held._holding
    held._whole_round_at -= dispatcher.BUSY_HOLD_SECONDS  # no whole round for that long: one is due
    assert held._round() == 0 and published == [plain] and not held._holding


def test_with_a_process_free_a_round_publishes_everything_at_once(async_flow, published):
    plain = accept(async_flow.listener)
    free = dispatcher.Dispatcher(1, busy=lambda: False)
    free._whole_round_at = time.monotonic()
    assert free._round() == 0 and published == [plain] and not free._holding


def test_the_dispatcher_lingers_only_while_every_process_is_busy(monkeypatch):
    waits = []
    free = dispatcher.Dispatcher(1, busy=lambda: False)
    monkeypatch.setattr(free._stop, "wait", waits.append)
    free._linger()
    assert waits == []
    busy = dispatcher.Dispatcher(1, busy=lambda: True)
    monkeypatch.setattr(busy._stop, "wait", lambda seconds: (waits.append(seconds), time.sleep(seconds)))
    start = time.monotonic()
    busy._linger()
    assert time.monotonic() - start >= dispatcher.BUSY_LINGER_SECONDS
    assert waits and max(waits) <= dispatcher.BUSY_CHECK_SECONDS
