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
from typing import TypeVar

from django.db import DatabaseError, OperationalError, connection, transaction

T = TypeVar("T")
SHORT_BUSY_MS = 2
_turn = threading.Lock()  # this process's writers, one at a time


def write_transaction(action: Callable[[], T]) -> T:
    """`action()` in one transaction, its result returned; retried whole while SQLite says locked.

    Inside a transaction the caller already holds (tests, services writing several rows
    together) it runs once as a savepoint: the lock is the caller's to wait for."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            return action()
    timeout = float(connection.settings_dict.get("OPTIONS", {}).get("timeout", 30))
    deadline = time.monotonic() + timeout
    if not _turn.acquire(timeout=timeout):
        raise OperationalError("database is locked: this process's other writers held it past the timeout")
    try:
        _set_busy_timeout(SHORT_BUSY_MS)
    except BaseException:
        _turn.release()
        raise
    try:
        while True:
            try:
                with transaction.atomic():
                    return action()
            except OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
    finally:
        try:
            _set_busy_timeout(int(timeout * 1000))  # the connection serves other callers after this
        except DatabaseError:
            connection.close()  # a broken connection: the next use opens a fresh one with the configured wait
        finally:
            _turn.release()


def _set_busy_timeout(ms: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout={int(ms)}")
