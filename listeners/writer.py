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

import asyncio
import threading
import weakref

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction

from lib.dbwrites import copy_statement, execute_statements, insert_rows, many_rows_statement, mark_saved, one_statement, write_transaction
from lib.groupcommit import BatchWriter, Completion
from lib.loops import settle

from .dispatcher import notify_dispatchers, notify_statement
from .models import Message


class _Pending(Completion):
    """One request's message; its thread waits (on the completion's bare lock) until the writer is done with it."""

    __slots__ = ("message",)

    def __init__(self, message: Message, on_finish=None):
        super().__init__(on_finish)
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
        self._watched: weakref.WeakSet = weakref.WeakSet()

    def store(self, message: Message) -> None:
        self._submit(_Pending(message))

    def store_soon(self, message: Message, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        """`message` handed to the writer without waiting: the future (of `loop`) is done once the row
        is committed, or raises the DatabaseError that kept it out. For a request on an event loop,
        which must not block its thread (config/asgi.py)."""
        future = loop.create_future()

        def tell(pending: _Pending) -> None:  # on the writer's thread
            try:
                loop.call_soon_threadsafe(settle, future, None, pending.error)
            except RuntimeError:
                pass  # the loop has closed (shutdown): nobody awaits this row any more

        self._hand_over(_Pending(message, tell))
        if loop not in self._watched:
            self._watched.add(loop)
            loop.call_later(WATCH_SECONDS, self._watch, loop)
        return future

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every WATCH_SECONDS on a loop that handed rows over: a writer thread that died (it should
        not) is started again, and takes the rows still queued. A blocked caller writes its own
        row instead (BatchWriter._submit); a loop's request has no thread to do that."""
        self._ensure_thread()
        loop.call_later(WATCH_SECONDS, self._watch, loop)

    def _write(self, batch: list[_Pending]) -> None:
        messages = [p.message for p in batch]
        try:
            if not store_in_one_statement(messages):
                write_transaction(lambda: insert_messages(messages), dedicated=True)
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


WATCH_SECONDS = 1.0


def insert_messages(messages: list[Message]) -> None:
    """One INSERT of new Message rows (COPY on PostgreSQL), with the values the ORM would write,
    prepared as `lib.dbwrites.insert_rows` does: under load, bulk_create's SQL compiler cost
    more than the database itself."""
    db = connections[DEFAULT_DB_ALIAS]
    sql, rows = insert_rows(messages)
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            # COPY: the rows go in one stream, adapted by psycopg's C code; executemany sent each row
            # as its own statement, each parameter composed in Python (a tenth of the web's CPU).
            with db.wrap_database_errors, cursor.cursor.copy(copy_statement(Message)) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(sql, rows)
        if any(m.status == Message.Status.QUEUED for m in messages):
            notify_dispatchers(cursor)
    for message in messages:
        mark_saved(message)


# Up to this many rows a batch goes as one multi-row INSERT, past it as COPY. In process on
# PostgreSQL, CPU per message: 1 row 0.32-0.36 ms against 0.80-0.89 by COPY, 4 rows about even
# (0.24-0.26 / 0.22-0.25), 16 rows 0.18 against 0.09-0.10 (COPY adapts rows in C).
ONE_STATEMENT_ROWS = 4


def store_in_one_statement(messages: list[Message]) -> bool:
    """On PostgreSQL, outside a transaction: the messages inserted, and the dispatchers notified, by
    one statement that commits by itself; True once done. Elsewhere False, and nothing is written.

    A small batch (at low load a writer takes a row or two at a time) cost more in its transaction's
    round trips than in its rows: BEGIN with the COPY, the COPY's end, the NOTIFY, the COMMIT. Here
    it is one round trip: a data-modifying WITH holding the INSERT, then pg_notify."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or db.in_atomic_block or len(messages) > ONE_STATEMENT_ROWS:
        return False
    sql, rows = insert_rows(messages)
    statement = many_rows_statement(sql, rows)
    if any(m.status == Message.Status.QUEUED for m in messages):
        statement = one_statement(statement, notify_statement())
    execute_statements(statement)
    for message in messages:
        mark_saved(message)
    return True


def save_message(message: Message) -> None:
    """INSERT one message through the ORM; a queued one wakes the dispatchers at commit."""
    with transaction.atomic():
        message.save(force_insert=True)
        if message.status == Message.Status.QUEUED:
            with connection.cursor() as cursor:
                notify_dispatchers(cursor)


_writer = GroupWriter()


def store_message_soon(message: Message, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
    """`message` stored by the group writer; the future of `loop` is done once it is committed."""
    return _writer.store_soon(message, loop)


def store_message(message: Message, group: bool) -> None:
    """INSERT `message`, committed when this returns (unless inside the caller's transaction)."""
    if not group or connection.in_atomic_block:
        save_message(message)
    else:
        _writer.store(message)
