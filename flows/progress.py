"""How far a running FlowRun has got, saved while its records stream.

The engine calls `RunProgress.tick` once per record read. A tick only compares the clock
with the next due time; once a run has gone on for `PROGRESS_SECONDS`, and then at most
once per `PROGRESS_SECONDS`, one UPDATE writes the run's record counts and the bytes read
so far (the payload stream's position). A run that ends sooner writes nothing here.
"""
from __future__ import annotations

import logging
import time
from typing import BinaryIO

from django.db import OperationalError

from .models import FlowRun

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 1.0


class RunProgress:
    """Throttled progress writes for one run; `source` is the payload stream being read."""

    __slots__ = ("run_id", "source", "interval", "_clock", "_due", "saves")

    def __init__(self, run_id: int, source: BinaryIO | None = None, interval: float | None = None, clock=time.monotonic):
        self.run_id = run_id
        self.source = source
        self.interval = PROGRESS_SECONDS if interval is None else interval
        self._clock = clock
        self._due = clock() + self.interval
        self.saves = 0

    def tick(self, result) -> None:
        """Called per record with the run's RunResult; saves it when a save is due."""
        now = self._clock()
        if now < self._due:
            return
        self._due = now + self.interval
        self.save(result)

    def bytes_read(self) -> int | None:
        """How far the reader has got in the payload stream (None when it cannot say)."""
        tell = getattr(self.source, "tell", None)
        if tell is None:
            return None
        try:
            return tell()
        except (OSError, ValueError):  # a closed or unseekable stream: no byte count this time
            return None

    def save(self, result) -> None:
        fields = {"records_in": result.records_in, "records_out": result.records_out,
                  "records_rejected": len(result.rejected)}
        position = self.bytes_read()
        if position is not None:
            fields["bytes_read"] = position
        try:
            FlowRun.objects.filter(pk=self.run_id, status=FlowRun.Status.RUNNING).update(**fields)
        except OperationalError as exc:  # a busy database must not fail the run; the next tick tries again
            log.warning("could not save the progress of run %s: %s", self.run_id, exc)
            return
        self.saves += 1
