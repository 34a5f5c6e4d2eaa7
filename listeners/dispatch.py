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
PUBLISH_BATCH = 50
# While payloads keep coming, publishes are spaced at least this far apart, so each
# carries what arrived meanwhile: a publish (a broker round trip, a file for the
# embedded broker) cost a tenth of the web's CPU when nearly every message went alone.
# A message arriving after a quiet spell still goes at once.
PUBLISH_INTERVAL_SECONDS = 0.02


def publish(message_id) -> bool:
    """Publish one message id now. False (logged) if the broker is unreachable."""
    return publish_many([str(message_id)])


def publish_many(message_ids: list[str]) -> bool:
    """Publish ids as one task (one broker round trip for a burst). False (logged) if the broker is unreachable."""
    from flows.tasks import run_message_task, run_messages_task

    try:
        if len(message_ids) == 1:
            run_message_task.apply_async(args=[message_ids[0]], retry=False)
        else:
            run_messages_task.apply_async(args=[message_ids], retry=False)
    except Exception as exc:  # any broker error: the sweeper will publish them again
        log.warning("could not publish %d message(s) from %s (%s: %s); the sweeper will retry",
                    len(message_ids), message_ids[0], exc.__class__.__name__, exc)
        return False
    return True


class BackgroundPublisher:
    def __init__(self):
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_PENDING)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._paused_until = 0.0
        self._last_publish = 0.0

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
            # Everything that arrived since the last publish goes as one task: under a
            # burst, one broker round trip (and one worker wake-up) carries many messages;
            # alone, a message still goes at once. Batches stay small enough for every
            # worker process to get a share.
            batch = [self._queue.get()]
            wait = self._last_publish + PUBLISH_INTERVAL_SECONDS - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            while len(batch) < PUBLISH_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if time.monotonic() < self._paused_until:
                continue  # broker down a moment ago: leave these to the sweeper
            self._last_publish = time.monotonic()
            if not publish_many(batch):
                self._paused_until = time.monotonic() + BROKER_PAUSE_SECONDS


_publisher = BackgroundPublisher()


def publish_soon(message_id) -> None:
    """Publish after the caller has its answer; inline when tasks run eagerly (tests)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        publish(message_id)
    else:
        _publisher.submit(message_id)
