"""A short-lived, per-process cache of listeners by path, for the ingest hot path.

Resolving a listener with its flow and format is the most expensive query of an
ingest (a join the ORM compiles on every call). Each web process keeps what it
resolved for PUSHFLOW_LISTENER_CACHE_SECONDS (default 1 s; 0 turns it off).
A change saved in this process clears it at once (signals); another process sees
the change within that time. Unknown paths are cached too, so a flood of 404s
does not reach the database.

When an entry runs out under load, one thread reloads it and the process's other
request threads keep using it meanwhile (a few milliseconds past its time): every
thread used to miss at once and run the same query, once a second per listener.

Pushes answered on the event loop (listeners/loop_ingest.py) only read the cache
(`remembered`). In an entry's last quarter of its time, one of them is sent to a
thread (lib/refresh_ahead.py), whose lookup reloads the entry before it runs out: under a steady flood the
loop never finds it gone, and never sends a burst of pushes to the threads at once.
"""
from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import DatabaseError
from django.db.models.signals import m2m_changed, post_delete, post_save

from lib.refresh_ahead import serves_without_loading

_entries: dict[str, tuple[float, object]] = {}
_reloading = threading.Lock()  # held by the one thread reloading a run-out entry (reloads are rare: one per TTL)
_due: set[str] = set()  # paths whose entry the next lookup on a thread reloads, ahead of its time
MAX_ENTRIES = 10_000


def cached_listener(path: str, load):
    """The listener at `path` (or None), from the cache or from `load(path)`."""
    ttl = settings.PUSHFLOW_LISTENER_CACHE_SECONDS
    if ttl <= 0:
        return load(path)
    now = time.monotonic()
    hit = _entries.get(path)
    if hit is not None and hit[0] > now and path not in _due:
        return hit[1]
    if hit is None:
        return _store(path, load(path), now + ttl)
    if not _reloading.acquire(blocking=False):
        return hit[1]  # another thread is reloading: this entry serves until it has
    try:
        return _store(path, load(path), now + ttl)
    except DatabaseError:
        if hit[0] > now:
            return hit[1]  # reloaded ahead of its time: the entry still serves until then
        raise
    finally:
        _reloading.release()


def remembered(path: str) -> tuple[bool, object]:
    """(True, the listener at `path` or None) while the cache holds an entry in its time for it;
    (False, None) otherwise, and once in the entry's last quarter (lib/refresh_ahead.py), marking
    it for the next lookup on a thread to reload. Never loads: for a caller that must not touch
    the database."""
    ttl = settings.PUSHFLOW_LISTENER_CACHE_SECONDS
    if ttl <= 0:
        return False, None
    hit = _entries.get(path)
    if hit is None or not serves_without_loading(hit[0], time.monotonic(), ttl, path, _due):
        return False, None
    return True, hit[1]


def _store(path: str, listener, expires: float):
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[path] = (expires, listener)
    _due.discard(path)
    return listener


def clear(*args, **kwargs) -> None:
    _entries.clear()
    _due.clear()


def connect_signals() -> None:
    from flows.models import Flow
    from formats.models import Format

    from .models import Listener

    for model in (Listener, Flow, Format):
        post_save.connect(clear, sender=model, dispatch_uid=f"listener-cache-save-{model.__name__}")
        post_delete.connect(clear, sender=model, dispatch_uid=f"listener-cache-delete-{model.__name__}")
    m2m_changed.connect(clear, sender=Listener.allowed_users.through, dispatch_uid="listener-cache-allowed-users")
