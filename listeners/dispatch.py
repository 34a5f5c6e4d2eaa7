"""Handing accepted messages to the broker without making the caller wait for it.

The message row is committed before the 202; publishing its id is only a wake-up
call for a worker. It happens on a background thread of the web process, so a
slow or unreachable broker never holds up an answer. After a failed publish the
broker is left alone for a few seconds (ids are dropped meanwhile, not lost):
every message still `queued` is published again by the periodic sweeper.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from django.conf import settings

log = logging.getLogger(__name__)
BROKER_PAUSE_SECONDS = 5.0
MAX_PENDING = 100_000


def publish(message_id) -> bool:
    """Publish one message id now. False (logged) if the broker is unreachable."""
    from flows.tasks import run_message_task

    try:
        run_message_task.apply_async(args=[str(message_id)], retry=False)
    except Exception as exc:  # any broker error: the sweeper will publish it again
        log.warning("could not publish message %s (%s: %s); the sweeper will retry", message_id, exc.__class__.__name__, exc)
        return False
    return True


class BackgroundPublisher:
    def __init__(self):
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_PENDING)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._paused_until = 0.0

    def submit(self, message_id) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait(str(message_id))
        except queue.Full:
            log.warning("publish backlog full; message %s waits for the sweeper", message_id)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pushflow-publisher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            message_id = self._queue.get()
            if time.monotonic() < self._paused_until:
                continue  # broker down a moment ago: leave this one to the sweeper
            if not publish(message_id):
                self._paused_until = time.monotonic() + BROKER_PAUSE_SECONDS


_publisher = BackgroundPublisher()


def publish_soon(message_id) -> None:
    """Publish after the caller has its answer; inline when tasks run eagerly (tests)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        publish(message_id)
    else:
        _publisher.submit(message_id)
