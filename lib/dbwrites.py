"""Short write transactions that wait for SQLite's write lock in short polls.

SQLite's own busy handler sleeps longer and longer (up to 100 ms a try) while another
connection holds the write lock, so a writer kept sleeping long after the lock was
free: that was most of the sync round trip's p99 on the embedded default. Here the
lock is asked for with a 2 ms busy timeout and the transaction is tried again, for as
long as the connection's configured timeout allows. Within a process the writers take
turns on a plain lock first: SQLite has one writer at a time anyway, and a dozen threads
polling at once kept the one holding the lock from the GIL it needed to finish (a
measured collapse to a few requests a second). Other databases queue writers on their
own row locks: the transaction runs once, as with `transaction.atomic`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connection, connections, models, transaction
from django.db.models.fields import AutoFieldMixin

T = TypeVar("T")
SHORT_BUSY_MS = 2
_turn = threading.RLock()  # this process's writers, one at a time (re-entered by an on_commit hook that writes)


def write_transaction(action: Callable[[], T], dedicated: bool = False) -> T:
    """`action()` in one transaction, its result returned; retried whole while SQLite says locked.

    Inside a transaction the caller already holds (tests, services writing several rows
    together) it runs once as a savepoint: the lock is the caller's to wait for.
    `dedicated`: this thread's connection serves nothing but these transactions (a group
    commit writer), so its short busy timeout stays set instead of being put back each time."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            return action()
    timeout = float(connection.settings_dict.get("OPTIONS", {}).get("timeout", 30))
    deadline = time.monotonic() + timeout
    _set_busy_timeout(SHORT_BUSY_MS)  # outside the turn: each statement there is a wait for the GIL
    try:
        if not _turn.acquire(timeout=timeout):
            raise OperationalError("database is locked: this process's other writers held it past the timeout")
        try:
            while True:
                try:
                    with transaction.atomic():
                        return action()
                except OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
        finally:
            _turn.release()
    finally:
        try:
            if not dedicated:
                _set_busy_timeout(int(timeout * 1000))  # the connection serves other callers after this
        except DatabaseError:
            connection.close()  # a broken connection: the next use opens a fresh one with the configured wait


def _set_busy_timeout(ms: int) -> None:
    """Set SQLite's busy timeout on this thread's connection, unless it is set so already."""
    raw = connection.connection
    known_raw, known_ms = getattr(connection, "pushflow_busy_timeout", (None, None))
    if raw is not None and raw is known_raw and ms == known_ms:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout={int(ms)}")
    # The very connection it was set on (a reconnect opens a new one, with the configured wait).
    connection.pushflow_busy_timeout = (connection.connection, ms)


# --- how long a commit waits for the disk ------------------------------------------------------------------
# A PostgreSQL commit waits until its write-ahead log is on disk. The worker's writes (claims, run
# rows, run and message ends) need not: each is redone if lost, since a message whose claim or end
# is lost in a database crash goes back to queued and runs again (runs are at-least-once, and a
# later commit that does wait makes every earlier one durable too). What the worker takes in from
# outside (a timed flow's source) is stored in a `durable_transaction`. Accepting a payload, in the
# web, always waits.


def relax_commit_durability(db) -> None:
    """On PostgreSQL, this connection's commits no longer wait for the log flush (`synchronous_commit off`)."""
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


@contextmanager
def durable_transaction():
    """`transaction.atomic()` whose commit waits for the disk, also on a connection that relaxed that."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO on")
        yield


# --- statements built before the transaction ------------------------------------------------------------
# The ORM compiles an INSERT or UPDATE anew on every save: on the sync path that cost more than the
# database itself, and it ran while the write lock was held. These build the same SQL and values
# (each field's pre_save and database preparation) beforehand; the transaction only executes them.


def insert_statement(instance: models.Model) -> tuple[str, list]:
    """(sql, params) inserting this unsaved instance; an auto primary key is left to the database."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = _insert_fields(type(instance))
    quote = db.ops.quote_name
    sql = (f"INSERT INTO {quote(instance._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    return sql, [f.get_db_prep_save(f.pre_save(instance, True), db) for f in fields]


def execute_insert(instance: models.Model, statement: tuple[str, list]) -> None:
    """Run an `insert_statement` of `instance`; the instance then has its primary key and counts as saved."""
    db = connections[DEFAULT_DB_ALIAS]
    sql, params = statement
    auto = instance._meta.pk if isinstance(instance._meta.pk, AutoFieldMixin) else None
    with _cursor(db) as cursor:
        if auto is not None and db.features.can_return_columns_from_insert:
            cursor.execute(f"{sql} RETURNING {db.ops.quote_name(auto.column)}", params)
            instance.pk = cursor.fetchone()[0]
        else:
            cursor.execute(sql, params)
            if auto is not None:
                instance.pk = cursor.lastrowid
    instance._state.adding = False
    instance._state.db = db.alias


def update_statement(model: type[models.Model], pk, values: dict, only_if: dict | None = None) -> tuple[str, list]:
    """(sql, params) setting `values` (field name -> plain value) on the row with primary key `pk`,
    and only while its fields still equal `only_if` (field name -> plain value), if given."""
    db = connections[DEFAULT_DB_ALIAS]
    quote = db.ops.quote_name
    fields = [model._meta.get_field(name) for name in values]
    conditions = [model._meta.pk, *(model._meta.get_field(name) for name in only_if or {})]
    sql = (f"UPDATE {quote(model._meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} "
           f"WHERE {' AND '.join(f'{quote(f.column)} = %s' for f in conditions)}")
    params = [f.get_db_prep_save(values[f.name], db) for f in fields]
    wanted = [pk, *(only_if or {}).values()]
    return sql, [*params, *(f.get_db_prep_save(value, db) for f, value in zip(conditions, wanted, strict=True))]


def execute_statements(*statements: tuple[str, list]) -> None:
    with _cursor(connections[DEFAULT_DB_ALIAS]) as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


def execute_together(*updates: tuple[str, list]) -> None:
    """Run `update_statement`s as one transaction, committed when this returns.

    On PostgreSQL outside a transaction they go as one statement (each but the last in a
    data-modifying WITH, which runs in full whether or not it is read) that commits by
    itself: one round trip instead of BEGIN, each UPDATE and COMMIT. Recording a run's end
    took four round trips per message in the worker. Elsewhere, or inside a transaction the
    caller holds, they run one by one in a transaction. Each must touch rows the others don't:
    in one statement, every part sees the rows as they were before it."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or db.in_atomic_block or len(updates) < 2:
        with transaction.atomic():
            execute_statements(*updates)
        return
    *first, (last_sql, last_params) = updates
    sql = "WITH " + ", ".join(f"step_{n} AS ({step_sql})" for n, (step_sql, _) in enumerate(first)) + " " + last_sql
    execute_statements((sql, [*(value for _, params in first for value in params), *last_params]))


@contextmanager
def _cursor(db):
    """A cursor for these statements. On PostgreSQL one that binds parameters on the server:
    Django's cursors quote every parameter into the SQL text in Python (a tenth of the sync
    path's CPU, for an INSERT of 30 columns), and a statement sent this way is prepared once
    the connection has run it a few times. It is wrapped as Django wraps its own (errors,
    query logging, execute wrappers)."""
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            yield cursor
        return
    import psycopg

    db.ensure_connection()
    with db.wrap_database_errors:
        raw = psycopg.Cursor(db.connection)
    with db._prepare_cursor(raw) as cursor:
        yield cursor


def _insert_fields(model: type[models.Model]) -> list:
    pk = model._meta.pk
    skip_pk = isinstance(pk, AutoFieldMixin)
    return [f for f in model._meta.concrete_fields if not (skip_pk and f is pk)]
