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

import json
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from operator import attrgetter
from typing import TypeVar

import orjson
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
# The SQL text is built once per model (and set of columns); a field whose preparation leaves a value
# of a plain type as it is (see `_plain_types`) passes such a value straight through: Django's
# per-field preparation of a 30-column message row was most of what building it cost.


def insert_statement(instance: models.Model) -> tuple[str, list]:
    """(sql, params) inserting this unsaved instance; an auto primary key is left to the database."""
    sql, (params,) = insert_rows([instance])
    return sql, params


def insert_rows(instances: list[models.Model]) -> tuple[str, list[list]]:
    """(sql, params of each row) inserting these unsaved instances of one model; an auto primary
    key is left to the database."""
    db = connections[DEFAULT_DB_ALIAS]  # the thread's own wrapper, not the proxy looked up per field
    sql, plan = _insert_plan(type(instances[0]), db.vendor)
    return sql, [[_prepared(field, value_of(instance), plain, db) for field, value_of, plain in plan]
                 for instance in instances]


def many_rows_statement(sql: str, rows: list[list]) -> tuple[str, list]:
    """An `insert_rows` INSERT of one row made one INSERT of all `rows` (multi-row VALUES)."""
    head, values = sql.split(" VALUES ", 1)
    return f"{head} VALUES {', '.join([values] * len(rows))}", [value for row in rows for value in row]


@cache
def copy_statement(model: type[models.Model]) -> str:
    """PostgreSQL's `COPY ... FROM STDIN` of the columns `insert_rows` fills, in that order."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    columns = ", ".join(quote(f.column) for f in _insert_fields(model))
    return f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"


def _prepared(field, value, plain: tuple, db):
    """What `field.get_db_prep_save(value, db)` gives, without asking it when `value` is None or
    of a type the field passes through unchanged on this database."""
    if value is None or type(value) in plain:
        return value
    if plain is _JSON:
        return _json_param(value)
    if plain is _AWARE_DATETIME and type(value) is datetime and value.tzinfo is not None:
        return value
    return field.get_db_prep_save(value, db)


# Markers for `_plain_types`, never equal to a value's type: values that pass only once checked.
_JSON = ("a JSONField without a custom encoder",)
_AWARE_DATETIME = ("a datetime with its time zone",)


@cache
def _insert_plan(model: type[models.Model], vendor: str) -> tuple[str, list]:
    db = connections[DEFAULT_DB_ALIAS]
    fields = _insert_fields(model)
    quote = db.ops.quote_name
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    return sql, [(f, _value_getter(f), _plain_types(f, vendor)) for f in fields]


def _value_getter(field) -> Callable:
    """`field.pre_save(instance, True)`: the attribute itself unless the field computes it on save."""
    plain_attribute = type(field).pre_save is models.Field.pre_save or (
        isinstance(field, models.DateField) and not (field.auto_now or field.auto_now_add)
        and type(field).pre_save in (models.DateField.pre_save, models.DateTimeField.pre_save))
    if plain_attribute:
        return attrgetter(field.attname)
    return lambda instance: field.pre_save(instance, True)


_PLAIN_BY_FIELD = {
    models.CharField: (str,), models.TextField: (str,), models.BooleanField: (bool,),
    **dict.fromkeys((models.IntegerField, models.BigIntegerField, models.SmallIntegerField, models.PositiveIntegerField,
                     models.PositiveBigIntegerField, models.PositiveSmallIntegerField, models.AutoField,
                     models.BigAutoField, models.SmallAutoField), (int,)),
}


def _plain_types(field, vendor: str) -> tuple:
    """The value types `field` hands to the database unchanged (checked in tests/lib/test_dbwrites.py).

    Only for Django's own field classes, never a subclass that may prepare values its own way."""
    if isinstance(field, models.ForeignKey):
        return _plain_types(field.target_field, vendor)
    kind = type(field)
    if kind in _PLAIN_BY_FIELD:
        return _PLAIN_BY_FIELD[kind]
    if vendor == "postgresql":  # psycopg takes these as they are; SQLite's backend turns them into text
        if kind is models.UUIDField:
            return (uuid.UUID,)
        if kind is models.JSONField and field.encoder is None:
            return _JSON
        if kind is models.DateTimeField:
            return _AWARE_DATETIME
    return ()


# What orjson would encode but the standard encoder refuses goes to the standard one, to fail there.
_ORJSON_AS_STANDARD = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                       | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _json_param(value):
    """A JSONField's value for PostgreSQL, encoded with orjson (the standard library's encoder cost
    as much as the rest of a message's parameters); a value orjson refuses goes the standard way."""
    from psycopg.types.json import Jsonb

    try:
        return Jsonb(orjson.dumps(value, option=_ORJSON_AS_STANDARD), dumps=_already_encoded)
    except TypeError:
        return Jsonb(value, dumps=json.dumps)


def _already_encoded(data: bytes) -> bytes:
    return data


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
    mark_saved(instance)


def execute_insert_after(instance: models.Model, insert: tuple[str, list], statements: tuple = ()) -> None:
    """`statements` (prebuilt UPDATEs of other rows), then the `insert_statement` of `instance`,
    committed together: as `one_statement` on PostgreSQL outside a transaction (one round trip
    and one commit), else in one transaction. With no statements, `execute_insert`."""
    db = connections[DEFAULT_DB_ALIAS]
    if not statements:
        execute_insert(instance, insert)
        return
    single = one_statement(*statements, insert) if not db.in_atomic_block else None
    if single is not None:
        execute_insert(instance, single)
        return
    with transaction.atomic():
        execute_statements(*statements)
        execute_insert(instance, insert)


def update_statement(model: type[models.Model], pk, values: dict, only_if: dict | None = None) -> tuple[str, list]:
    """(sql, params) setting `values` (field name -> plain value) on the row with primary key `pk`,
    and only while its fields still equal `only_if` (field name -> plain value), if given."""
    db = connections[DEFAULT_DB_ALIAS]
    sql, fields, conditions = _update_plan(model, tuple(values), tuple(only_if or ()), db.vendor)
    params = [_prepared(f, values[f.name], plain, db) for f, plain in fields]
    wanted = [pk, *(only_if or {}).values()]
    return sql, [*params, *(_prepared(f, value, plain, db) for (f, plain), value in zip(conditions, wanted, strict=True))]


@cache
def _update_plan(model: type[models.Model], names: tuple, condition_names: tuple, vendor: str):
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = [model._meta.get_field(name) for name in names]
    conditions = [model._meta.pk, *(model._meta.get_field(name) for name in condition_names)]
    sql = (f"UPDATE {quote(model._meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)} "
           f"WHERE {' AND '.join(f'{quote(f.column)} = %s' for f in conditions)}")
    return sql, [(f, _plain_types(f, vendor)) for f in fields], [(f, _plain_types(f, vendor)) for f in conditions]


def execute_statements(*statements: tuple[str, list]) -> None:
    with _cursor(connections[DEFAULT_DB_ALIAS]) as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


def execute_together(*updates: tuple[str, list]) -> None:
    """Run `update_statement`s as one transaction, committed when this returns.

    On PostgreSQL outside a transaction they go as `one_statement`, which commits by itself:
    one round trip instead of BEGIN, each UPDATE and COMMIT. Recording a run's end took four
    round trips per message in the worker. Elsewhere, or inside a transaction the caller
    holds, they run one by one in a transaction."""
    db = connections[DEFAULT_DB_ALIAS]
    single = one_statement(*updates) if not db.in_atomic_block else None
    if single is None:
        with transaction.atomic():
            execute_statements(*updates)
        return
    execute_statements(single)


def one_statement(*statements: tuple[str, list]) -> tuple[str, list] | None:
    """Several prebuilt INSERTs and UPDATEs as one statement, or None where the database has no such
    form (only PostgreSQL has: each but the last in a data-modifying WITH, which runs in full whether
    or not it is read). Alone, outside a transaction, it commits by itself: all or nothing, in one
    round trip. Each must touch rows the others don't, for every part sees the rows as they were
    before the statement (foreign keys between them are checked at its end, so a row and a row that
    refers to it may go together)."""
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql" or len(statements) < 2:
        return None
    *first, (last_sql, last_params) = statements
    sql = "WITH " + ", ".join(f"step_{n} AS ({step_sql})" for n, (step_sql, _) in enumerate(first)) + " " + last_sql
    return sql, [*(value for _, params in first for value in params), *last_params]


def mark_saved(instance: models.Model) -> None:
    """`instance`, inserted by a prebuilt statement, counts as saved (as `execute_insert` leaves it)."""
    instance._state.adding = False
    instance._state.db = DEFAULT_DB_ALIAS


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
