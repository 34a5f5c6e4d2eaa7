"""Claims kept alive while their runs go on.

A worker claims a message by setting it running with `claimed_at`; the sweeper takes a
message whose claim is older than PUSHFLOW_RUN_LEASE_SECONDS for one whose worker was lost
and queues it again. A run may rightly last longer than that (a big file, a slow
destination, a machine under load), and it must not then run a second time beside itself:
while any run of this process goes on, one thread renews the claims it holds every quarter
lease. Only a process that is really gone (killed, its machine down) lets its claims lapse.
A run shorter than a quarter lease costs no write here.
"""
from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from listeners.models import Message

log = logging.getLogger(__name__)


class LeaseKeeper:
    """The messages this process is running, and the thread that renews their claims."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict = {}  # message pk -> how many runs of this process hold it
        self._pid = 0
        self._thread: threading.Thread | None = None

    @contextmanager
    def held(self, *message_ids):
        """Keep the claims of `message_ids` alive for the duration of the block."""
        with self._lock:
            for message_id in message_ids:
                self._held[message_id] = self._held.get(message_id, 0) + 1
            if message_ids and (self._pid != os.getpid() or self._thread is None or not self._thread.is_alive()):
                self._start()  # first run of this process (or of a forked child: threads do not survive fork)
        try:
            yield
        finally:
            with self._lock:
                for message_id in message_ids:
                    left = self._held.pop(message_id) - 1
                    if left:
                        self._held[message_id] = left

    def holding(self) -> list:
        with self._lock:
            return list(self._held)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._renew_forever, name="pushflow-leases", daemon=True)
        self._thread.start()

    def _renew_forever(self) -> None:
        interval = max(0.25, settings.PUSHFLOW_RUN_LEASE_SECONDS / 4)
        stop = threading.Event()  # never set: the thread lives as long as its process
        while not stop.wait(interval):
            self.renew()

    def renew(self) -> int:
        """Move the claims held now forward to this moment; how many were renewed."""
        ids = self.holding()
        if not ids:
            return 0
        try:
            return Message.objects.filter(pk__in=ids, status=Message.Status.RUNNING).update(claimed_at=timezone.now())
        except DatabaseError as exc:  # the store away or busy: the next round tries again, well within the lease
            log.warning("could not renew the claims of %d running messages: %s", len(ids), exc.__class__.__name__)
            connection.close()
            return 0


leases = LeaseKeeper()
