"""Per-listener rate limit and concurrency cap, answered with 429 and Retry-After.

The counters live in each web process: with N web processes a listener takes at
most N times its limits. That bounds a flood without a shared store on the hot
path; a deployment that needs one global figure puts a proxy limit in front.
A flood of refusals is sampled when kept as messages: one per listener every
few seconds, carrying the count of the refusals it stands for.
"""
from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager

SAMPLE_SECONDS = 5.0


class LimitExceeded(Exception):
    def __init__(self, reason: str, retry_after: int):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, capacity: float):
        self.tokens = capacity
        self.updated = time.monotonic()


_lock = threading.Lock()
_buckets: dict[int, _Bucket] = {}
_in_flight: dict[int, int] = {}
_refused: dict[int, tuple[float, int]] = {}  # listener -> (last kept, refusals not kept since)


def take_token(listener_id: int, per_second: float) -> None:
    """Spend one request of the listener's rate (burst: one second's worth)."""
    if per_second <= 0:
        return
    capacity = max(1.0, per_second)
    with _lock:
        bucket = _buckets.get(listener_id)
        if bucket is None:
            bucket = _buckets[listener_id] = _Bucket(capacity)
        now = time.monotonic()
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * per_second)
        bucket.updated = now
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) / per_second)
            raise LimitExceeded(f"rate limit of {per_second:g} requests per second exceeded", max(1, wait))
        bucket.tokens -= 1


@contextmanager
def concurrency_slot(listener_id: int, cap: int):
    """Hold one of the listener's `cap` concurrent request slots for the duration."""
    if cap <= 0:
        yield
        return
    with _lock:
        if _in_flight.get(listener_id, 0) >= cap:
            raise LimitExceeded(f"more than {cap} requests at once on this listener", 1)
        _in_flight[listener_id] = _in_flight.get(listener_id, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _in_flight[listener_id] -= 1


def should_keep_refusal(listener_id: int) -> tuple[bool, int]:
    """Whether to keep this refusal as a message, and how many earlier ones it stands for."""
    now = time.monotonic()
    with _lock:
        last, skipped = _refused.get(listener_id, (0.0, 0))
        if now - last >= SAMPLE_SECONDS:
            _refused[listener_id] = (now, 0)
            return True, skipped
        _refused[listener_id] = (last, skipped + 1)
        return False, 0


def reset() -> None:
    with _lock:
        _buckets.clear()
        _in_flight.clear()
        _refused.clear()
