"""Accepting a plain push on the web server's event loop, with no thread held for it.

Most pushes look alike: an async listener the listener cache already holds, a credential
checked in memory, a small body that arrived whole before the request was handed on. For
those the web server (config/asgi.py) asks here first. Every check of the ingest view
(listeners/views.py) runs on the loop, in memory; the message goes to the group writer
(listeners/writer.py) and the loop awaits its commit before answering 202. A pool thread
used to wait through that commit, and under a flood the two hand-offs between loop and
thread, and the GIL passed between them, cost more than the checks themselves.

Everything else is answered by the view on a thread, as before: a listener not in the
cache, sync mode, rate or concurrency limits, a dedupe window or an Idempotency-Key (both
look in the database), Basic credentials or a token not checked lately, a CORS request, a
compressed or large body, and any request the checks would refuse (a refusal is kept as a
message). `admit` says None for those, having changed nothing. A listener or token entry
near the end of its cache time also says None once, so that a thread reloads it ahead
(listeners/cache.py). An accepted push gets the answer the view would give, headers
included (tests/listeners/test_loop_ingest.py and tests/e2e compare the two).
"""
from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse

from accounts.authentication import parse_authorization, remembered_token_user

from .cache import remembered
from .models import Listener, Message, valid_path
from .services import fill_accepted
from .views import (
    IDEMPOTENCY_KEYS,
    Rejected,
    accepted_body,
    authenticate_pusher,
    check_request,
    new_message,
    request_origin,
    store_failed,
    validate_at_door,
    verify_body_signature,
)
from .writer import store_message_soon

log = logging.getLogger(__name__)


def admit(request, path: str, data: bytes) -> Message | None:
    """The message for this push, ready to store, when it can be accepted on the loop; else None.
    `data` is the whole body as sent."""
    if not (settings.PUSHFLOW_LOOP_INGEST and settings.PUSHFLOW_GROUP_COMMIT) or settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    if not valid_path(path):
        return None
    known, listener = remembered(path)
    if not known or listener is None or listener.mode != Listener.Mode.ASYNC:
        return None
    if listener.rate_limit > 0 or listener.max_concurrent > 0 or listener.dedupe_window_seconds:
        return None
    meta = request.META
    if "HTTP_ORIGIN" in meta or any(key in meta for key in IDEMPOTENCY_KEYS):
        return None
    if meta.get("HTTP_CONTENT_ENCODING", "").strip().lower() not in ("", "identity"):
        return None
    if len(data) > listener.max_body_bytes or len(data) > settings.PUSHFLOW_INLINE_BODY_BYTES:
        return None
    try:
        request_origin(request)  # the receipt's host, checked against ALLOWED_HOSTS
        message = new_message(request, listener)
        if not listener.address_allowed(message.remote_addr):
            return None
        if not _pusher_known(request, listener, message):
            return None
        check_request(request, listener)
        verify_body_signature(request, listener, data)
        validate_at_door(listener, data, message.charset)
    except Rejected:
        return None  # refused: the view keeps the refusal and answers it
    fill_accepted(listener, message, data, queue=True)
    return message


def _pusher_known(request, listener: Listener, message: Message) -> bool:
    """Whether the credential is good, as far as memory can tell; sets the message's user."""
    if listener.auth == Listener.Auth.TOKEN:
        credentials = parse_authorization(request.META.get("HTTP_AUTHORIZATION"))
        user = remembered_token_user(credentials.value) if credentials.scheme == "bearer" else None
        if user is None or not user.is_active or not (user.is_superuser or user.pk == listener.owner_id):
            return False  # not checked lately, or allowed through a team: the view asks the database
        message.user = user
        return True
    if listener.auth in (Listener.Auth.NONE, Listener.Auth.API_KEY, Listener.Auth.HMAC):
        message.user = authenticate_pusher(request, listener)  # in memory for these; raises Rejected
        return True
    return False


async def store(message: Message) -> HttpResponse | None:
    """Store the admitted `message`: None once committed, or the 503 answer when the store failed."""
    try:
        await store_message_soon(message, asyncio.get_running_loop())
    except (DatabaseError, OSError) as exc:
        return store_failed(message.listener, exc)
    return None


def accepted_answer(request, message: Message, extra_headers: list[tuple[bytes, bytes]]) -> tuple[int, list, bytes]:
    """The 202 receipt the view would give (listeners.views.accepted_response), as the web server
    sends it: status, header list, body. Built without an HttpResponse, whose headers mapping,
    charset handling and checks were a twentieth of a push's CPU on the loop."""
    body = accepted_body(request, message)
    message_id = str(message.pk).encode()
    return 202, [(b"content-type", b"application/json"), (b"x-message-id", message_id), *extra_headers,
                 (b"content-length", str(len(body)).encode())], body
