"""Django's per-use connection health check, skipped on a connection that has just done clean work.

With CONN_HEALTH_CHECKS a kept connection runs `SELECT 1` before its first use after each
`close_old_connections()`, so a connection that died with a database restart is replaced
instead of failing the request. A thread that takes work in short units (the group-commit
writers' batches, the worker's tasks) paid that round trip before every unit: under load
one per sync request, at low load one per task. A connection that finished a unit without
a database error less than `seconds` ago is trusted instead; one that failed is tested
(Django marks it), and so is an idle one.
"""
from __future__ import annotations

import time

from django.db import close_old_connections, connection


class RecentlyHealthy:
    """For one thread (or process): call `begin()` before a unit of work and `end()` after it."""

    def __init__(self, seconds: float = 1.0):
        self.seconds = seconds
        self._clean_at = float("-inf")  # when a unit last ended without a database error

    def begin(self) -> None:
        close_old_connections()  # a broken or too old connection is dropped first
        if connection.connection is not None and time.monotonic() - self._clean_at < self.seconds:
            connection.health_check_done = True

    def end(self) -> None:
        if connection.connection is not None and not connection.errors_occurred:
            self._clean_at = time.monotonic()
        close_old_connections()  # honours CONN_MAX_AGE, as the end of a request does
