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

import logging
import operator
import os
import queue
import threading
import time

from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, close_old_connections, connection, connections, models, transaction

from lib.groupcommit import Completion

from .dispatcher import notify_dispatchers
from .models import Message

log = logging.getLogger(__name__)
MAX_BATCH = 200


class _Pending(Completion):
    """One request's message; its thread waits (on the completion's bare lock) until the writer is done with it."""

    __slots__ = ("message", "error")

    def __init__(self, message: Message):
        super().__init__()
        self.message = message
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        if not self.finished:
            self.error = error
            super().finish()


class GroupWriter:
    """One writer thread per process; `store` blocks until the row is committed or fails."""

    def __init__(self):
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def store(self, message: Message) -> None:
        pending = _Pending(message)
        self._ensure_thread()
        self._queue.put(pending)
        # Wait for the commit. The writer never drops an item, but if its thread died
        # (it should not) the item is stored here instead of being waited on forever.
        while not pending.wait(1.0):
            if not self._alive():
                self._store_alone(pending)
        if pending.error is not None:
            raise pending.error

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def _ensure_thread(self) -> None:
        if self._alive():
            return
        with self._lock:
            if not self._alive():  # first use, or a forked child that inherited no thread
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="pushflow-group-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
                close_old_connections()  # honours CONN_MAX_AGE, as the end of a request does
            except BaseException as exc:  # noqa: BLE001 — every waiting request must hear of it
                log.warning("group writer failed a batch of %d: %s", len(batch), exc.__class__.__name__)
                for pending in batch:
                    pending.finish(exc if isinstance(exc, DatabaseError) else DatabaseError(str(exc)))

    def _write(self, batch: list[_Pending]) -> None:
        close_old_connections()
        short_lock_waits()
        try:
            with_lock_retries(lambda: self._insert_batch(batch))
        except DatabaseError:
            if not connection.is_usable():
                connection.close()
            for pending in batch:  # find the row that failed; the others are stored one by one
                self._store_alone(pending)
            return
        for pending in batch:
            pending.finish()

    @staticmethod
    def _insert_batch(batch: list[_Pending]) -> None:
        with transaction.atomic():
            insert_messages([p.message for p in batch])

    @staticmethod
    def _store_alone(pending: _Pending) -> None:
        error = None
        try:
            with_lock_retries(lambda: save_message(pending.message))
        except DatabaseError as exc:
            error = exc
            if not connection.is_usable():
                connection.close()
        pending.finish(error)


# SQLite's own busy handler sleeps longer and longer (up to 100 ms a try) while
# another process holds the write lock, so a waiting batch kept sleeping long after
# the lock was free. The writer asks for the lock with a short busy timeout and
# tries again itself, for as long as the configured timeout allows.
SQLITE_SHORT_BUSY_MS = 2


def short_lock_waits() -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_SHORT_BUSY_MS}")


def with_lock_retries(action) -> None:
    deadline = time.monotonic() + float(connection.settings_dict.get("OPTIONS", {}).get("timeout", 30))
    while True:
        try:
            return action()
        except OperationalError as exc:
            if connection.vendor != "sqlite" or "locked" not in str(exc) or time.monotonic() > deadline:
                raise


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
