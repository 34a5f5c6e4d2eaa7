"""Resolving an event loop's futures from other threads (the web server's pool, the group writer)."""
from __future__ import annotations

import asyncio


def settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    """Give `future` its result or error; run on the future's loop (by call_soon_threadsafe)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
