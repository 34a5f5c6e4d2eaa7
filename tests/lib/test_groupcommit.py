"""lib.groupcommit.GroupCommit: concurrent callers' writes committed together, each caller seeing its own result."""
import threading
import time

import pytest
from django.db import IntegrityError, close_old_connections, connection

from lib.groupcommit import GroupCommit
from listeners.models import Listener

pytestmark = pytest.mark.django_db(transaction=True)


def in_threads(writer, actions):
    """Run each action through `writer` from its own thread; (result or error) per action, in order."""
    outcomes = [None] * len(actions)

    def call(i, action):
        try:
            outcomes[i] = writer.run(action)
        except Exception as exc:  # the outcome under test
            outcomes[i] = exc
        finally:
            close_old_connections()

    threads = [threading.Thread(target=call, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    return threads, outcomes


def test_waiting_callers_are_committed_in_one_batch_and_each_gets_its_own_result(user):
    writer = GroupCommit("test-writer")
    gate, batches = threading.Event(), []
    first_threads, first = in_threads(writer, [lambda: gate.wait(5) and "first"])
    time.sleep(0.2)  # the writer is now inside the first transaction; the next callers queue up

    def make(i):
        def action():
            batches.append(connection.atomic_blocks[0])  # the transaction it ran in
            return Listener.objects.create(owner=user, name=f"l{i}", path=f"l{i}").path
        return action

    threads, outcomes = in_threads(writer, [make(i) for i in range(5)])
    time.sleep(0.2)
    gate.set()
    for t in first_threads + threads:
        t.join(10)
    assert first == ["first"]
    assert outcomes == [f"l{i}" for i in range(5)]
    assert len(batches) == 5 and all(b is batches[0] for b in batches)  # one transaction, one commit
    assert Listener.objects.count() == 5


def test_one_callers_error_fails_only_that_caller(user):
    Listener.objects.create(owner=user, name="taken", path="taken")
    writer = GroupCommit("test-writer")
    gate = threading.Event()
    first_threads, _ = in_threads(writer, [lambda: gate.wait(5)])
    time.sleep(0.2)
    paths = ["a", "taken", "b"]
    threads, outcomes = in_threads(writer, [
        (lambda p=p: Listener.objects.create(owner=user, name=p, path=p).path) for p in paths])
    time.sleep(0.2)
    gate.set()
    for t in first_threads + threads:
        t.join(10)
    assert outcomes[0] == "a" and outcomes[2] == "b"
    assert isinstance(outcomes[1], IntegrityError)
    assert sorted(Listener.objects.values_list("path", flat=True)) == ["a", "b", "taken"]


def test_without_grouping_it_runs_on_the_callers_connection(user):
    writer = GroupCommit("test-writer")
    caller = threading.get_ident()
    ran_on = writer.run(lambda: threading.get_ident(), group=False)
    assert ran_on == caller and writer._thread is None
