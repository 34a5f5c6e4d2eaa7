"""Group commit for short write transactions: concurrent callers' writes in one transaction.

Under load every sync request wrote two small transactions of its own. Each took the
database's write lock, and the thread holding it waited for the GIL at every statement
while the process's other threads ran flows: a convoy, with waits of 100-200 ms for the
lock at 8 connections on the embedded default. Here callers hand their writes (a
callable) to one writer thread per process and wait; the writer runs everything
waiting in one transaction with one commit (see `lib.dbwrites.write_transaction`). A
caller returns only once its writes are committed and sees its own error: a batch that
fails is run again job by job, so one caller's duplicate key fails only that caller.

Inside a transaction the caller holds (tests), or with grouping off, the writes run on
the caller's own connection: the writer's connection could not see that transaction.
"""
from __future__ import annotations

import _thread
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

from .dbhealth import RecentlyHealthy
from .dbwrites import write_transaction

log = logging.getLogger(__name__)
T = TypeVar("T")


class Completion:
    """Finished once, with or without an error. Its waiter either blocks on a bare lock, held from
    the start and released once, or (`on_finish` given) is told by that callable, called once on
    the thread that finished it: an event loop's request does not block a thread.

    A threading.Event wakes its waiter through a Condition written in Python: set once per
    request, that cost a tenth of the web's CPU under load."""

    __slots__ = ("finished", "error", "_released", "_on_finish")

    def __init__(self, on_finish: Callable[[Completion], None] | None = None) -> None:
        self.finished = False
        self.error: BaseException | None = None
        self._on_finish = on_finish
        self._released = None
        if on_finish is None:
            self._released = _thread.allocate_lock()
            self._released.acquire()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._on_finish is not None:
            self._on_finish(self)
        else:
            self._released.release()

    def fail(self, error: BaseException) -> None:
        """Finished with `error`, for its waiter to raise (unless already finished)."""
        if not self.finished:
            self.error = error
            self.finish()

    def wait(self, timeout: float) -> bool:
        """True once finished; False after `timeout` seconds without it."""
        return self.finished or self._released.acquire(timeout=timeout)


class BatchWriter:
    """One writer thread per process, fed by callers who each hand it an item (a Completion)
    and wait: the thread takes everything waiting (up to `max_batch`) as one batch.

    A subclass writes a batch (`_write`, finishing each item) and one item alone
    (`_write_alone`). If writing a batch raises, every item of it fails with that error.
    The thread never drops an item, but if it died (it should not) a waiting caller writes
    its own item alone instead of waiting forever."""

    max_batch = 100
    # A connection that ran a batch without error this recently is not tested before the next (see
    # lib/dbhealth.py): under load that was a `SELECT 1` before every batch, two per sync request.
    trusted_for = 1.0

    def __init__(self, name: str):
        self.name = name
        self._queue: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _submit(self, item: Completion) -> None:
        """Hand `item` to the writer and wait until it is finished; its error, if any, raised."""
        self._hand_over(item)
        while not item.wait(1.0):
            if not self._alive():
                self._write_alone(item)
        if item.error is not None:
            raise item.error

    def _hand_over(self, item: Completion) -> None:
        """Queue `item` for the writer, without waiting: it is finished on the writer's thread."""
        self._ensure_thread()
        self._queue.put(item)

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def _ensure_thread(self) -> None:
        if self._alive():
            return
        with self._lock:
            if not self._alive():  # first use, or a forked child that inherited no thread
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        health = RecentlyHealthy(self.trusted_for)
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                health.seconds = self.trusted_for  # read each time: it may be set on the writer
                health.begin()
                self._write(batch)
                health.end()
            except BaseException as exc:  # noqa: BLE001 — every waiting caller must hear of it
                log.warning("%s failed a batch of %d: %s", self.name, len(batch), exc.__class__.__name__)
                for item in batch:
                    item.fail(exc)

    def _write(self, batch: list) -> None:
        raise NotImplementedError

    def _write_alone(self, item) -> None:
        raise NotImplementedError


class _Job(Completion):
    __slots__ = ("action", "result", "self_committing")

    def __init__(self, action: Callable, self_committing: bool = False):
        super().__init__()
        self.action = action
        self.result = None
        self.self_committing = self_committing


class GroupCommit(BatchWriter):
    """Callers' write actions run together; `run` blocks until the action's writes are committed or fail."""

    def run(self, action: Callable[[], T], group: bool = True, self_committing: bool = False) -> T:
        """`action()` committed (grouped with other callers' actions when `group`); its result.

        `self_committing`: the action is one statement that commits by itself (see
        `lib.dbwrites.one_statement`); with no other action waiting it runs so, without a
        transaction around it (two round trips fewer: BEGIN and COMMIT)."""
        if not group or connection.in_atomic_block:
            return _committed(action, self_committing)
        job = _Job(action, self_committing)
        self._submit(job)
        return job.result

    def _write(self, batch: list[_Job]) -> None:
        if len(batch) > 1:
            try:
                results = write_transaction(lambda: [job.action() for job in batch], dedicated=True)
            except Exception:  # one job's error rolled back all: each job alone finds whose it was
                if not connection.is_usable():
                    connection.close()
            else:
                for job, result in zip(batch, results, strict=True):
                    job.result = result
                    job.finish()
                return
        for job in batch:
            self._write_alone(job)

    def _write_alone(self, job: _Job) -> None:
        try:
            job.result = _committed(job.action, job.self_committing, dedicated=self._on_writer_thread())
        except Exception as exc:  # the caller's to handle (a duplicate key, the store down)
            job.fail(exc)
            if not connection.is_usable():
                connection.close()
            return
        job.finish()

    def _on_writer_thread(self) -> bool:
        return self._thread is threading.current_thread()


def _committed(action: Callable[[], T], self_committing: bool, dedicated: bool = False) -> T:
    """`action()` committed: by itself if it is one self-committing statement and no transaction is
    open, otherwise in a `write_transaction`."""
    if self_committing and not connection.in_atomic_block:
        return action()
    return write_transaction(action, dedicated=dedicated)
