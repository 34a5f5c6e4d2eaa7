"""Group commit: accepted messages from concurrent requests stored in one transaction.

Under load, one INSERT and one COMMIT per request means every request thread
fights for the database's write lock (SQLite sleeps in its busy handler; each
PostgreSQL commit waits for its own WAL flush). Here request threads hand their
message to one writer thread per process and wait; the writer stores everything
waiting in one multi-row INSERT and one COMMIT, then wakes each request. A
caller still gets its 2xx only after its row is committed, and sees the same
errors as with a direct INSERT (a batch that fails is retried row by row, so a
duplicate idempotency key fails only its own request).

Inside an open transaction (tests, services that store several rows together)
`store_message` saves directly: the writer's connection could not see that
transaction and might wait on its lock.
"""
from __future__ import annotations

import operator
import threading

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction

from lib.dbwrites import write_transaction
from lib.groupcommit import BatchWriter, Completion

from .dispatcher import notify_dispatchers
from .models import Message


class _Pending(Completion):
    """One request's message; its thread waits (on the completion's bare lock) until the writer is done with it."""

    __slots__ = ("message",)

    def __init__(self, message: Message):
        super().__init__()
        self.message = message

    def fail(self, error: BaseException) -> None:
        # The request answers a database error as such (503), whatever broke the batch.
        super().fail(error if isinstance(error, DatabaseError) else DatabaseError(str(error)))


class GroupWriter(BatchWriter):
    """Messages of concurrent requests in one INSERT; `store` blocks until the row is committed or fails.
    On SQLite the writer's connection waits for the write lock in short polls (lib.dbwrites)."""

    max_batch = 200

    def __init__(self):
        super().__init__("pushflow-group-writer")

    def store(self, message: Message) -> None:
        self._submit(_Pending(message))

    def _write(self, batch: list[_Pending]) -> None:
        try:
            write_transaction(lambda: insert_messages([p.message for p in batch]), dedicated=True)
        except DatabaseError:
            if not connection.is_usable():
                connection.close()
            for pending in batch:  # find the row that failed; the others are stored one by one
                self._write_alone(pending)
            return
        for pending in batch:
            pending.finish()

    def _write_alone(self, pending: _Pending) -> None:
        try:
            write_transaction(lambda: save_message(pending.message), dedicated=self._thread is threading.current_thread())
        except DatabaseError as exc:
            pending.fail(exc)
            if not connection.is_usable():
                connection.close()
            return
        pending.finish()


def insert_messages(messages: list[Message]) -> None:
    """One executemany INSERT of new Message rows.

    The same values the ORM would write (each field's pre_save and database
    preparation), without building the statement anew for every row: under load,
    bulk_create's SQL compiler cost more than the database itself. Fields whose
    preparation leaves a value as it is (text, integers, foreign keys) are read
    straight from the instance.
    """
    db = connections[DEFAULT_DB_ALIAS]  # the thread's own wrapper, not the proxy looked up per field
    quote = db.ops.quote_name
    fields = Message._meta.concrete_fields
    sql = (f"INSERT INTO {quote(Message._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    prepare = [_value_reader(f, db) for f in fields]
    rows = [[read(m) for read in prepare] for m in messages]
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            # COPY: the rows go in one stream, adapted by psycopg's C code; executemany sent each row
            # as its own statement, each parameter composed in Python (a tenth of the web's CPU).
            columns = ", ".join(quote(f.column) for f in fields)
            with db.wrap_database_errors, cursor.cursor.copy(
                    f"COPY {quote(Message._meta.db_table)} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(sql, rows)
        if any(m.status == Message.Status.QUEUED for m in messages):
            notify_dispatchers(cursor)
    for message in messages:
        message._state.adding = False
        message._state.db = db.alias


# Field classes whose pre_save and database preparation return a stored str/int (or None) unchanged.
_PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField)


def _is_plain(field) -> bool:
    if isinstance(field, models.ForeignKey):
        return _is_plain(field.target_field)  # an integer key is plain, a UUID one is not
    return isinstance(field, _PLAIN_FIELDS) and type(field).__module__.startswith("django.db.models")


def _value_reader(field, db):
    if _is_plain(field):
        return operator.attrgetter(field.attname)
    return lambda message: field.get_db_prep_save(field.pre_save(message, True), db)


def save_message(message: Message) -> None:
    """INSERT one message through the ORM; a queued one wakes the dispatchers at commit."""
    with transaction.atomic():
        message.save(force_insert=True)
        if message.status == Message.Status.QUEUED:
            with connection.cursor() as cursor:
                notify_dispatchers(cursor)


_writer = GroupWriter()


def store_message(message: Message, group: bool) -> None:
    """INSERT `message`, committed when this returns (unless inside the caller's transaction)."""
    if not group or connection.in_atomic_block:
        save_message(message)
    else:
        _writer.store(message)
