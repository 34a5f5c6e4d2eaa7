"""lib.groupcommit.GroupCommit: concurrent callers' writes committed together, each caller seeing its own result."""
import threading
import time

import pytest
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, connections

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


def test_a_connection_that_just_ran_a_clean_batch_is_not_tested_again_but_one_after_an_error_or_idle_is(
        user, health_checks):
    tests = health_checks  # the writer's thread is the only other one here
    writer = GroupCommit("test-writer")

    def count_listeners():
        return Listener.objects.count()

    def fail_with_a_database_error():
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")

    assert writer.run(count_listeners) == 0  # a fresh connection
    assert writer.run(count_listeners) == 0  # committed a moment ago: no test round trip
    assert tests == []
    with pytest.raises(DatabaseError, match="no_such_table"):
        writer.run(fail_with_a_database_error)
    writer.run(count_listeners)
    assert len(tests) >= 1  # after a database error the connection is tested before it is used again
    tests.clear()
    writer.trusted_for = 0  # as if the last clean batch were long ago
    writer.run(count_listeners)
    assert len(tests) == 1

    def past_its_age():  # closed after this batch, so the test database can go
        connections["default"].close_at = 0
        return connections["default"]

    writers_connection = writer.run(past_its_age)
    deadline = time.monotonic() + 5  # the caller is answered before the writer tidies up after the batch
    while writers_connection.connection is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writers_connection.connection is None


def test_a_self_committing_job_alone_runs_without_a_transaction_and_with_others_inside_theirs(user):
    writer = GroupCommit("test-writer")
    seen = []

    def looks(name):
        def action():
            seen.append((name, connection.in_atomic_block))
            return Listener.objects.create(owner=user, name=name, path=name).path
        return action

    assert writer.run(looks("alone"), self_committing=True) == "alone"
    gate = threading.Event()
    first_threads, _ = in_threads(writer, [lambda: gate.wait(5)])
    time.sleep(0.2)  # the next two wait and go as one batch
    jobs = [threading.Thread(target=lambda: writer.run(looks("batched"), self_committing=True)),
            threading.Thread(target=lambda: writer.run(looks("other")))]
    for t in jobs:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in first_threads + jobs:
        t.join(10)
    assert dict(seen) == {"alone": False, "batched": True, "other": True}
    assert sorted(Listener.objects.values_list("path", flat=True)) == ["alone", "batched", "other"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a statement with several writes is PostgreSQL's")
def test_one_statement_writes_all_its_rows_or_none(user):
    from lib.dbwrites import execute_insert, insert_statement, one_statement, update_statement
    from listeners.models import Message

    listener = Listener.objects.create(owner=user, name="s", path="s")
    message = Message.fresh(method="POST", path="/listen/s")
    message.listener, message.owner_id = listener, user.pk
    message.store_body(b"{}")
    later = Listener(owner=user, name="later", path="later")
    execute_insert(later, one_statement(insert_statement(message), insert_statement(later)))
    assert Message.objects.filter(pk=message.pk).exists() and Listener.objects.filter(pk=later.pk).exists()
    other = Message.fresh(method="POST", path="/listen/s")
    other.listener, other.owner_id = listener, user.pk
    other.store_body(b"{}")
    with pytest.raises(IntegrityError):  # the second part takes a path taken: the first part is undone too
        execute_insert(Listener(owner=user, name="x", path="s"),
                       one_statement(insert_statement(other), insert_statement(Listener(owner=user, name="x", path="s"))))
    assert not Message.objects.filter(pk=other.pk).exists()
    assert one_statement(update_statement(Listener, listener.pk, {"name": "t"})) is None  # one is already one
