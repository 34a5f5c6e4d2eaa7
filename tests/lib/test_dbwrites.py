"""lib.dbwrites: write_transaction (SQLite's write lock waited for in short polls, the connection left as it
was) and execute_together (several updates, all or nothing)."""
import datetime as dt
import json
import sqlite3
import threading
import time
import uuid
import warnings

import pytest
from django.db import IntegrityError, OperationalError, connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.dbwrites import execute_together, update_statement, write_transaction
from listeners.models import Listener

pytestmark = pytest.mark.django_db(transaction=True)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's write lock and busy handler")


def busy_timeout() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        return cursor.fetchone()[0]


def hold_write_lock(seconds: float) -> threading.Thread:
    """Another connection takes the write lock now and keeps it for `seconds` (at least: on a loaded
    machine its thread wakes late); the thread's `released_at` is the monotonic time it let go."""
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release():
        time.sleep(seconds)
        other.execute("ROLLBACK")
        thread.released_at = time.monotonic()
        other.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


@sqlite_only
def test_it_waits_out_another_writer_and_commits_soon_after_the_lock_is_free(user):
    configured = busy_timeout()
    holder = hold_write_lock(0.4)
    started = time.monotonic()
    created = write_transaction(lambda: Listener.objects.create(owner=user, name="a", path="a"))
    committed = time.monotonic()
    holder.join()
    assert Listener.objects.filter(pk=created.pk).exists()
    assert committed - started > 0.35  # it waited for the lock
    # Soon after the lock was let go: SQLite's own handler sleeps up to 100 ms a try, past the release.
    assert committed - holder.released_at < 0.1
    assert busy_timeout() == configured == 30000


@sqlite_only
def test_past_the_connections_timeout_it_gives_up_and_leaves_nothing_written(user, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {**connection.settings_dict["OPTIONS"], "timeout": 0.2})
    holder = hold_write_lock(0.6)
    try:
        with pytest.raises(OperationalError, match="locked"):
            write_transaction(lambda: Listener.objects.create(owner=user, name="b", path="b"))
    finally:
        holder.join()
    assert not Listener.objects.filter(path="b").exists()
    assert busy_timeout() == 200


@sqlite_only
def test_inside_the_callers_transaction_it_runs_once_as_part_of_it(user):
    from django.db import transaction

    with transaction.atomic():
        write_transaction(lambda: Listener.objects.create(owner=user, name="c", path="c"))
        assert busy_timeout() == 30000  # untouched: the caller holds the lock already
    assert Listener.objects.filter(path="c").exists()


def test_prebuilt_statements_write_what_the_orm_would(user):
    from lib.dbwrites import execute_insert, execute_statements, insert_statement, update_statement
    from listeners.models import Message

    listener = Listener(owner=user, name="d", path="d", methods=["POST", "PUT"], ip_allowlist=["10.0.0.0/8"])
    execute_insert(listener, insert_statement(listener))  # an auto primary key, read back
    assert listener.pk and not listener._state.adding
    message = Message.fresh(method="POST", path="/listen/d", headers={"X-A": "1"}, content_type="application/json")
    message.listener, message.owner_id = listener, user.pk
    message.store_body(b'{"a": 1}')
    write_transaction(lambda: execute_insert(message, insert_statement(message)))  # a UUID primary key
    execute_statements(update_statement(Message, message.pk, {"status": "succeeded", "response_body": b"\x00\x01",
                                                              "headers": {"X-B": "2"}}))
    stored = Message.objects.get(pk=message.pk)
    assert Listener.objects.get(pk=listener.pk).methods == ["POST", "PUT"]
    assert (stored.listener_id, stored.read_body(), stored.status) == (listener.pk, b'{"a": 1}', "succeeded")
    assert bytes(stored.response_body) == b"\x00\x01" and stored.headers == {"X-B": "2"}
    assert stored.received_at == message.received_at and stored.sha256 == message.sha256


@sqlite_only
def test_a_dedicated_writer_keeps_its_short_busy_timeout_without_setting_it_again(user):
    from django.test.utils import CaptureQueriesContext

    write_transaction(lambda: Listener.objects.create(owner=user, name="e", path="e"), dedicated=True)
    assert busy_timeout() == 2
    with CaptureQueriesContext(connection) as queries:
        write_transaction(lambda: Listener.objects.create(owner=user, name="f", path="f"), dedicated=True)
    assert not [q for q in queries.captured_queries if "busy_timeout" in q["sql"]]
    write_transaction(lambda: Listener.objects.create(owner=user, name="g", path="g"))  # a shared connection
    assert busy_timeout() == 30000  # is put back as it was


def test_an_update_with_only_if_changes_the_row_only_while_it_still_matches(user):
    from lib.dbwrites import execute_statements, update_statement

    listener = Listener.objects.create(owner=user, name="h", path="h")
    execute_statements(update_statement(Listener, listener.pk, {"name": "moved"}, only_if={"path": "elsewhere"}))
    assert Listener.objects.get(pk=listener.pk).name == "h"
    execute_statements(update_statement(Listener, listener.pk, {"name": "moved"}, only_if={"path": "h", "owner": user.pk}))
    assert Listener.objects.get(pk=listener.pk).name == "moved"


def test_updates_run_together_are_all_or_nothing(user):
    first = Listener.objects.create(owner=user, name="first", path="first")
    second = Listener.objects.create(owner=user, name="second", path="second")
    with pytest.raises(IntegrityError):  # the second update takes a path the first listener holds
        execute_together(update_statement(Listener, first.pk, {"name": "renamed"}),
                         update_statement(Listener, second.pk, {"path": "first"}))
    first.refresh_from_db()
    assert first.name == "first"
    execute_together(update_statement(Listener, first.pk, {"name": "renamed"}),
                     update_statement(Listener, second.pk, {"path": "moved"}))
    assert set(Listener.objects.values_list("name", "path")) == {("renamed", "first"), ("second", "moved")}


# --- the prepared parameters are Django's own -------------------------------------------------------------

def _comparable(param):
    """A parameter as the database would read it: a JSON document by its decoded text, or REFUSED
    where encoding it fails (psycopg encodes it when the statement runs)."""
    from psycopg import Binary
    from psycopg.types.json import Jsonb

    if isinstance(param, Binary):  # no equality of its own
        return ("binary", param.obj)
    if isinstance(param, Jsonb):
        try:
            return ("json", json.loads((param.dumps or json.dumps)(param.obj)))
        except (TypeError, ValueError):
            return REFUSED
    return param


REFUSED = ("refused",)


_values = st.one_of(
    st.none(), st.text(max_size=20), st.integers(-2**70, 2**70), st.booleans(), st.binary(max_size=10),
    st.uuids(), st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dictionaries(st.text(max_size=5) | st.integers(0, 9), st.text(max_size=5) | st.integers() | st.none(), max_size=3),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_prepared_parameter_is_what_the_field_would_give_the_database(data):
    """For every column the prebuilt statements write, any value: the same parameter as
    `field.get_db_prep_save` gives, or the same refusal."""
    from flows.models import FlowRun
    from lib.dbwrites import _insert_plan, _prepared
    from listeners.models import Message

    model = data.draw(st.sampled_from([Message, FlowRun, Listener]))
    _, plan = _insert_plan(model, connection.vendor)
    field, _, plain = data.draw(st.sampled_from(plan))
    value = data.draw(_values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a naive datetime, which Django warns of
        try:
            expected = _comparable(field.get_db_prep_save(value, connection))
        except Exception as exc:  # noqa: BLE001 — whatever Django refuses with, the fast path refuses too
            with pytest.raises(type(exc)):
                _prepared(field, value, plain, connection)
            return
        prepared = _comparable(_prepared(field, value, plain, connection))
        # What the standard JSON encoder refuses (a UUID in a document) orjson may encode instead.
        assert prepared == expected or expected is REFUSED


def test_plain_values_pass_through_on_each_column_kind():
    """The fast path is taken (not only correct by falling back): plain values of each kind come back as they are."""
    from lib.dbwrites import _insert_plan, _prepared
    from listeners.models import Message

    _, plan = _insert_plan(Message, connection.vendor)
    by_name = {field.name: (field, plain) for field, _, plain in plan}
    for name, value in (("path", "/listen/a"), ("size", 12), ("listener", 3)):
        field, plain = by_name[name]
        assert _prepared(field, value, plain, connection) is value
    if connection.vendor == "postgresql":
        now, key = timezone.now(), uuid.uuid4()
        for name, value in (("received_at", now), ("id", key)):
            field, plain = by_name[name]
            assert _prepared(field, value, plain, connection) is value
