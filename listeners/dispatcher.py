"""The dispatcher: turns committed `queued` messages into Celery work, in each worker.

The web process only stores an accepted message (status `queued`, `enqueued_at`
empty) and answers. A thread in every Celery worker that consumes the ingest
queue claims such rows oldest first, in batches, marks them enqueued and
publishes their ids. Taking the publish out of the request path freed a sixth of
the web's CPU under load, and there is no gap between commit and publish where a
crash could leave a message unannounced: the row itself is the announcement.

It wakes without delay when a message is committed: on PostgreSQL through
LISTEN/NOTIFY (the web's INSERT transaction notifies), on SQLite by watching
`PRAGMA data_version`, which changes whenever another connection commits. Without
either it polls. Several workers (on several machines) claim with SKIP LOCKED on
PostgreSQL; a rare double publish elsewhere is harmless, since a run claims its
message with a conditional UPDATE. A failed publish hands the rows back; the
periodic sweeper remains the safety net for everything else.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections, connection, connections, transaction
from django.utils import timezone

from .dispatch import publish_many
from .models import Message

log = logging.getLogger(__name__)
CHANNEL = "pushflow_queued"
CLAIM_LIMIT = 500
# Ids per published task at most: small enough that a backlog spreads over every worker process
# (a task's messages run one after another), large enough to spare the broker. A round that finds
# fewer than that for each of the worker's processes is shared out between them (see `task_size`).
DISPATCH_BATCH = 25
IDLE_WAIT_SECONDS = 1.0  # the longest wait for a wake-up before looking anyway
# After a round that found messages, while every process of the worker is busy, the longest pause
# before the next look. Under a steady stream every commit woke a round that found one or two rows,
# each published as its own task: at ~300 tasks a second the worker's pipeline (broker, main
# process, pool) fell behind and runs waited seconds. A busy process takes what was committed
# meanwhile itself, with no task, as soon as its run ends (flows/services.run_messages,
# `take_more`), so the dispatcher leaves new messages to it; what no process took by the end of the
# pause (a flow that orders or caps its runs, a long run) is published then. With a process free, a
# message is dispatched at once.
BUSY_LINGER_SECONDS = 0.025
BUSY_CHECK_SECONDS = 0.002
# While every process stays busy, a round publishes only messages of flows that order or cap their
# runs (a process does not take those itself), and every this often all that waits: a process may
# be held by a long run, and the broker hands the work to whichever worker is free.
BUSY_HOLD_SECONDS = 0.5
SQLITE_CHECK_SECONDS = 0.005
BROKER_PAUSE_SECONDS = 3.0
ERROR_PAUSE_SECONDS = 1.0


def notify_dispatchers(cursor) -> None:
    """Inside the transaction that stores queued messages: wake the dispatchers at its commit
    (PostgreSQL; SQLite dispatchers see the commit by themselves)."""
    if cursor.db.vendor == "postgresql":
        cursor.execute(f"NOTIFY {CHANNEL}")


def notify_statement() -> tuple[str, list]:
    """(sql, params) of the same wake-up as a statement to end a `lib.dbwrites.one_statement` with
    (PostgreSQL): the dispatchers hear it when that statement commits."""
    return "SELECT pg_notify(%s, '')", [CHANNEL]


def due_statement(limit: int, now, lock: bool, flows: str = "all") -> tuple[str, list]:
    """(sql, params) listing accepted messages no worker was told of yet, oldest first: the
    filter of `Message.objects` written out once. On SQLite the dispatcher looks after every
    commit anyone makes (a sync request commits twice); with the ORM compiling this query
    each time, that look took a third of a core under sync load and found nothing.
    `flows`: "all"; "held", only those of flows that order or cap their runs, which a busy worker
    process does not take by itself; "plain", only those it does take (flows/services.run_messages)."""
    from flows.services import plain_flow_sql

    db = connection
    quote, meta = db.ops.quote_name, Message._meta
    column = {name: quote(meta.get_field(name).column) for name in ("status", "enqueued_at", "next_attempt_at",
                                                                     "received_at")}
    of_flows = "" if flows == "all" else f"AND {plain_flow_sql(plain=flows == 'plain')} "
    sql = (f"SELECT {quote(meta.pk.column)} FROM {quote(meta.db_table)} "
           f"WHERE {column['status']} = %s AND {column['enqueued_at']} IS NULL "
           f"AND ({column['next_attempt_at']} IS NULL OR {column['next_attempt_at']} <= %s) {of_flows}"
           f"ORDER BY {column['received_at']} LIMIT %s" + (" FOR UPDATE SKIP LOCKED" if lock else ""))
    return sql, [Message.Status.QUEUED, db.ops.adapt_datetimefield_value(now), *(["none", 0] if of_flows else []), limit]


def _due_ids(limit: int, now, lock: bool = False, held_only: bool = False) -> list[str]:
    sql, params = due_statement(limit, now, lock, "held" if held_only else "all")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        # SQLite keeps a UUID as 32 hex digits, PostgreSQL gives a UUID: the same text for both.
        return [str(uuid.UUID(str(pk))) for (pk,) in cursor.fetchall()]


def claim_undispatched(limit: int = CLAIM_LIMIT, held_only: bool = False) -> list[str]:
    """Ids of accepted messages no worker was told of yet, oldest first, now marked enqueued
    (`held_only`: see `due_statement`)."""
    now = timezone.now()
    if not connection.features.has_select_for_update_skip_locked:
        # SQLite: look without the write lock first. Every commit (a worker's, a sync run's) wakes
        # the dispatcher, and taking the lock each time to find nothing held up those writers.
        ids = _due_ids(limit, now, held_only=held_only)
        if ids:
            Message.objects.filter(pk__in=ids, enqueued_at__isnull=True).update(enqueued_at=now)
        return ids
    with transaction.atomic():
        ids = _due_ids(limit, now, lock=True, held_only=held_only)
        if ids:
            Message.objects.filter(pk__in=ids, enqueued_at__isnull=True).update(enqueued_at=now)
    return ids


def hand_back(ids: list[str]) -> None:
    """Ids whose publish failed: undispatched again, for the next try."""
    Message.objects.filter(pk__in=ids, status=Message.Status.QUEUED).update(enqueued_at=None)


def task_size(found: int, processes: int) -> int:
    """Ids per task for a round that found `found`: shared out between the worker's `processes`,
    at most DISPATCH_BATCH each. Under a steady stream a round finds a few messages; as one task
    they ran one after another in one process while the other waited idle (payload-to-finished
    latency at half of the run capacity)."""
    return max(1, min(DISPATCH_BATCH, -(-found // max(1, processes))))


def dispatch_once(limit: int = CLAIM_LIMIT, processes: int = 1, held_only: bool = False) -> tuple[int, bool]:
    """Claim and publish one round; (messages claimed, whether the broker took them all)."""
    ids = claim_undispatched(limit, held_only)
    size = task_size(len(ids), processes)
    for start in range(0, len(ids), size):
        if not publish_many(ids[start:start + size]):
            hand_back(ids[start:])
            return len(ids), False
    return len(ids), True


class _Waiter:
    """Waits until something may have been committed, or the timeout. This one only sleeps:
    for databases without a wake-up, or (degraded) while the real one cannot be had."""

    def __init__(self, degraded: bool = False):
        self.degraded = degraded

    def wait(self, timeout: float) -> None:
        time.sleep(timeout)

    def close(self) -> None:
        pass


class _PostgresWaiter(_Waiter):
    def __init__(self):
        super().__init__()
        wrapper = connections["default"]
        self.conn = wrapper.get_new_connection(wrapper.get_connection_params())
        self.conn.autocommit = True
        self.conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> None:
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            break

    def close(self) -> None:
        self.conn.close()


class _SqliteWaiter(_Waiter):
    def __init__(self):
        super().__init__()
        self.conn = sqlite3.connect(connections["default"].settings_dict["NAME"], timeout=1)
        self.version = self._version()

    def _version(self) -> int:
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            version = self._version()
            if version != self.version:
                self.version = version
                return
            time.sleep(SQLITE_CHECK_SECONDS)

    def close(self) -> None:
        self.conn.close()


def _waiter() -> _Waiter:
    """The way to wait for commits on this database; plain polling if it cannot listen now."""
    vendor = connections["default"].vendor
    try:
        if vendor == "postgresql":
            return _PostgresWaiter()
        if vendor == "sqlite":
            return _SqliteWaiter()
    except Exception as exc:  # noqa: BLE001 — any driver error (database down): poll, and try again later
        log.warning("dispatcher cannot listen for new messages (%s); polling", exc.__class__.__name__)
        return _Waiter(degraded=True)
    return _Waiter()


class Dispatcher:
    """The dispatcher thread of one worker; `processes`: how many runs the worker runs at once;
    `busy()`: whether every one of them has a task now (not given: a round that found messages is
    always followed by the whole BUSY_LINGER_SECONDS, and nothing is held back)."""

    def __init__(self, processes: int = 1, busy: Callable[[], bool] | None = None):
        self.processes = processes
        self.busy = busy
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._found = 0  # messages the last round claimed
        self._holding = False  # whether the last round left the plain messages to the busy processes
        self._whole_round_at = 0.0  # monotonic time of the last round that published everything due

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pushflow-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        waiter = _waiter()
        try:
            while not self._stop.is_set():
                pause = self._round()
                if pause is None:
                    continue  # a full batch: more is waiting
                if pause:
                    self._stop.wait(pause)
                    continue
                if self._found or self._holding:
                    self._linger()
                    if self._holding:
                        continue  # look again: what the processes left goes once one is free
                try:
                    waiter.wait(IDLE_WAIT_SECONDS)
                except Exception as exc:  # noqa: BLE001 — the listening connection broke (database restart)
                    log.warning("dispatcher lost its wake-up connection (%s); reconnecting", exc.__class__.__name__)
                    waiter.degraded = True
                if waiter.degraded:  # try for the real wake-up again (the database may be back)
                    waiter.close()
                    waiter = _waiter()
        finally:
            waiter.close()
            connection.close()

    def _linger(self) -> None:
        """After a round that found messages: wait while every process is busy, at most BUSY_LINGER_SECONDS."""
        deadline = time.monotonic() + BUSY_LINGER_SECONDS
        while (self.busy is None or self.busy()) and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(BUSY_CHECK_SECONDS, left))

    def _round(self) -> float | None:
        """One claim-and-publish round: None to go again at once, else seconds to pause (0: wait for a wake-up)."""
        try:
            close_old_connections()
            now = time.monotonic()
            hold = self.busy is not None and self.busy() and now - self._whole_round_at < BUSY_HOLD_SECONDS
            if not hold:
                self._whole_round_at = now
            self._holding = hold
            claimed, published = dispatch_once(processes=self.processes, held_only=hold)
            self._found = claimed
        except DatabaseError as exc:
            log.warning("dispatcher cannot reach the database (%s); retrying", exc.__class__.__name__)
            if not connection.is_usable():
                connection.close()
            return ERROR_PAUSE_SECONDS
        except Exception:  # noqa: BLE001 — the thread must outlive any one bad round
            log.exception("dispatcher round failed")
            return ERROR_PAUSE_SECONDS
        if not published:
            return BROKER_PAUSE_SECONDS
        return None if claimed >= CLAIM_LIMIT else 0


def start_dispatcher(processes: int = 1, busy: Callable[[], bool] | None = None) -> Dispatcher:
    dispatcher = Dispatcher(processes, busy)
    dispatcher.start()
    return dispatcher
