"""Reading a cache entry from code that must not load it (the web server's event loop),
with the entry reloaded ahead of its end by a reader that may (a request thread).

Used by the listener cache (listeners/cache.py) and the token cache
(accounts/authentication.py): under a steady flood the loop never finds an entry run
out, which would send every push of that moment to a thread at once.
"""
from __future__ import annotations

REFRESH_AHEAD = 0.25  # of the cache's time: the last part of an entry's life, when it is reloaded


def serves_without_loading(expires: float, now: float, ttl: float, key, due: set) -> bool:
    """Whether an entry running out at `expires` may serve a reader that cannot reload it.
    True while the entry is in its time; False once it has run out, and once (the first
    such reader, which goes to a thread) in its last REFRESH_AHEAD of `ttl`, `key` then
    added to `due` for the cache's loading lookup to reload it and discard the key."""
    left = expires - now
    if left <= 0:
        return False
    if left < ttl * REFRESH_AHEAD and key not in due:
        due.add(key)
        return False
    return True
