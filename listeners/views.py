"""The ingest view: /listen/<path>. Every row of DESIGN §2's status table is answered here.

Order of checks: listener (404) -> rate and concurrency limits (429) -> address
allow-list (403) -> authentication (401/403) -> method (405) ->
content type (415) -> body with its cap (413/400) -> validation at the door (422)
-> store (503 if the database is down) -> 202, or run the flow for a sync caller.
A rejected request is kept as a `rejected` message with its reason.
"""
from __future__ import annotations

import hmac
import logging
from xml.sax.saxutils import escape

import orjson
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import DatabaseError, IntegrityError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import user_from_authorization
from flows.services import run_sync, start_sync_run
from formats.codecs import CodecError

from .body import BodyError, decode_content_encoding, read_body
from .cache import cached_listener
from .limits import LimitExceeded, concurrency_slot, should_keep_refusal, take_token
from .models import Listener, Message, valid_path
from .services import accept_message, first_with_key, first_with_same_body, record_rejection
from .signatures import SignatureError, verify_signature

log = logging.getLogger(__name__)

HIDDEN_HEADERS = {"authorization", "proxy-authorization", "cookie", "webhook-signature", "x-hub-signature-256",
                  "stripe-signature"}


class Rejected(Exception):
    def __init__(self, status: int, reason: str, headers: dict | None = None, data: bytes = b""):
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.data = data
        super().__init__(reason)


def fault_response(status: int, reason: str, message_id=None, listener: Listener | None = None, headers=None) -> HttpResponse:
    """A fault body: JSON, or XML when the listener reads XML."""
    # Until codecs build their own fault bodies (formats issue), XML listeners get this one.
    if listener is not None and listener.format_id and listener.format and listener.format.kind == "xml":
        mid = f"<messageId>{escape(str(message_id))}</messageId>" if message_id else ""
        body = f'<?xml version="1.0" encoding="UTF-8"?><fault><status>{status}</status>{mid}<reason>{escape(reason)}</reason></fault>'
        response = HttpResponse(body.encode(), status=status, content_type="application/xml; charset=utf-8")
    else:
        payload = {"status": status, "error": reason}
        if message_id:
            payload["message_id"] = str(message_id)
        response = HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")
    if message_id:
        response["X-Message-Id"] = str(message_id)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _request_headers(request, listener: Listener) -> dict:
    hidden = HIDDEN_HEADERS | {listener.api_key_header.lower()}
    headers = {}
    for key, value in request.META.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
        else:
            continue
        headers[name] = "***" if name.lower() in hidden else value
    return headers


# Where a request names its idempotency key, in order: an Idempotency-Key header, or a
# webhook-id (Standard Webhooks).
IDEMPOTENCY_KEYS = ("HTTP_IDEMPOTENCY_KEY", "HTTP_WEBHOOK_ID")


def new_message(request, listener: Listener) -> Message:
    content_type = request.META.get("CONTENT_TYPE", "")
    return Message.fresh(
        method=request.method,
        path=request.path[:300],
        query=request.META.get("QUERY_STRING", ""),
        headers=_request_headers(request, listener),
        remote_addr=request.META.get("REMOTE_ADDR", "")[:64],
        content_type=content_type.split(";")[0].strip().lower()[:200],
        charset=(request.content_params.get("charset", "") if hasattr(request, "content_params") else "")[:40],
        idempotency_key=next((request.META[key] for key in IDEMPOTENCY_KEYS if request.META.get(key)), "")[:200],
    )


def authenticate_pusher(request, listener: Listener):
    """The pushing user (or None when the listener needs none); raises Rejected."""
    if listener.auth == Listener.Auth.NONE:
        return None
    if listener.auth in (Listener.Auth.BASIC, Listener.Auth.TOKEN):
        user = user_from_authorization(request.META.get("HTTP_AUTHORIZATION"))
        challenge = 'Basic realm="pushflow", charset="UTF-8"' if listener.auth == Listener.Auth.BASIC else 'Bearer realm="pushflow"'
        if user is None:
            raise Rejected(401, "authentication required: missing or wrong credentials", {"WWW-Authenticate": challenge})
        if not listener.user_may_push(user):
            raise Rejected(403, f"user {user.get_username()!r} is not allowed on this listener")
        return user
    if listener.auth == Listener.Auth.API_KEY:
        given = request.META.get("HTTP_" + listener.api_key_header.upper().replace("-", "_"), "")
        keys = listener.secrets.get("api_keys") or ([listener.secrets["api_key"]] if listener.secrets.get("api_key") else [])
        if not given or not any(hmac.compare_digest(given.encode(), str(k).encode()) for k in keys):
            raise Rejected(401, f"missing or wrong API key in header {listener.api_key_header}")
        return None
    if listener.auth == Listener.Auth.HMAC:
        return None  # checked once the body is read: the signature covers it
    raise Rejected(401, f"authentication mode {listener.auth!r} is not available on this server")


def verify_body_signature(request, listener: Listener, data: bytes) -> None:
    if listener.auth != Listener.Auth.HMAC:
        return
    try:
        verify_signature(listener.signature, listener.secrets.get("signing_keys") or [], request.META, data)
    except SignatureError as exc:
        raise Rejected(401, f"signature check failed: {exc}") from None


def check_request(request, listener: Listener) -> None:
    if request.method not in listener.allowed_methods:
        raise Rejected(405, f"method {request.method} not allowed; use {', '.join(listener.allowed_methods)}",
                       {"Allow": ", ".join(listener.allowed_methods)})
    accepted = [t.lower() for t in (listener.content_types or [])]
    if accepted:
        media = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if media not in accepted:
            raise Rejected(415, f"content type {media or '(none)'!r} not accepted; send one of {', '.join(accepted)}")


def validate_at_door(listener: Listener, data: bytes, charset: str) -> None:
    if listener.format_id is None or listener.format is None:
        return
    try:
        listener.format.validate_payload(data, charset)
    except CodecError as exc:
        raise Rejected(422, f"payload is not valid {listener.format.kind}: {exc}", data=data) from None


def _load_listener(path: str) -> Listener | None:
    return Listener.objects.select_related("format", "flow").filter(path=path, enabled=True).first()


def resolve_listener(path: str) -> Listener | None:
    if not valid_path(path):
        return None  # no listener can have it; the database is not asked
    return cached_listener(path, _load_listener)


@csrf_exempt
def ingest(request, path: str):
    try:
        listener = resolve_listener(path)
    except DatabaseError:
        return fault_response(503, "the message store is unavailable; retry later", headers={"Retry-After": "5"})
    if listener is None:
        return fault_response(404, f"no enabled listener at /listen/{path}")
    try:
        request_origin(request)  # the receipt names this host: refuse one not allowed before anything is kept
    except DisallowedHost as exc:
        return fault_response(400, f"bad request: {str(exc)[:200]}", listener=listener)
    origin = request.META.get("HTTP_ORIGIN", "")
    if request.method == "OPTIONS" and origin and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META:
        return _preflight(request, listener, origin)
    response = _ingest_checked(request, listener)
    if origin and listener.cors_allows(origin):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = "X-Message-Id, Retry-After, Idempotent-Replayed"
        response["Vary"] = "Origin"
    return response


CORS_HEADERS = "Authorization, Content-Type, Content-Encoding, Idempotency-Key, X-API-Key, webhook-id, webhook-timestamp, webhook-signature"


def _preflight(request, listener: Listener, origin: str) -> HttpResponse:
    """A browser asking whether a page from `origin` may push: yes only for the listener's origins."""
    if not listener.cors_allows(origin):
        return fault_response(403, f"origin {origin[:200]!r} may not call this listener from a browser")
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Allow-Methods"] = ", ".join(listener.allowed_methods)
    headers = CORS_HEADERS + ("" if listener.api_key_header.lower() == "x-api-key" else f", {listener.api_key_header}")
    response["Access-Control-Allow-Headers"] = headers
    response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    return response


def _ingest_checked(request, listener: Listener) -> HttpResponse:
    message = new_message(request, listener)
    try:
        take_token(listener.pk, listener.rate_limit)
        with concurrency_slot(listener.pk, listener.max_concurrent):
            return _ingest(request, listener, message)
    except LimitExceeded as exc:
        keep, stands_for = should_keep_refusal(listener.pk)
        if keep:
            reason = exc.reason + (f" (and {stands_for} more refusals not kept one by one)" if stands_for else "")
            record_rejection(listener, message, 429, reason)
        return fault_response(429, exc.reason, message.pk if keep else None, listener, {"Retry-After": str(exc.retry_after)})


def _ingest(request, listener: Listener, message: Message) -> HttpResponse:
    try:
        if not listener.address_allowed(message.remote_addr):
            raise Rejected(403, f"address {message.remote_addr} is not allowed to push to this listener")
        user = authenticate_pusher(request, listener)
        message.user = user
        check_request(request, listener)
        try:
            data = read_body(request.META, listener.max_body_bytes, settings.PUSHFLOW_BODY_READ_TIMEOUT_SECONDS)
        except BodyError as exc:
            raise Rejected(exc.status, exc.reason, {"Connection": "close"}) from None
        verify_body_signature(request, listener, data)  # the signature covers the bytes as sent
        try:
            data = decode_content_encoding(data, request.META.get("HTTP_CONTENT_ENCODING", ""), listener.max_body_bytes)
        except BodyError as exc:
            raise Rejected(exc.status, exc.reason) from None
        validate_at_door(listener, data, message.charset)
    except Rejected as rejected:
        record_rejection(listener, message, rejected.status, rejected.reason, rejected.data)
        return fault_response(rejected.status, rejected.reason, message.pk, listener, rejected.headers)
    except DatabaseError:
        return fault_response(503, "the message store is unavailable; retry later", headers={"Retry-After": "5"})

    sync = listener.mode == Listener.Mode.SYNC
    flow = _enabled_flow(listener) if sync else None
    run = None
    try:
        first = first_with_key(listener, message.idempotency_key) or (
            None if message.idempotency_key else first_with_same_body(listener, data))
        if first is not None:
            return _replay(request, listener, first)
        if flow is not None:
            run = start_sync_run(listener, flow, message, data)  # stored with its run, in one transaction
        else:
            accept_message(listener, message, data, queue=not sync)
    except IntegrityError:  # the same key accepted by a concurrent request a moment ago
        return _replay(request, listener, first_with_key(listener, message.idempotency_key))
    except (DatabaseError, OSError) as exc:
        return store_failed(listener, exc)
    if sync:
        return _answer_sync(listener, flow, message, run)
    return accepted_response(request, message)


def store_failed(listener: Listener, exc: BaseException) -> HttpResponse:
    """The answer when an accepted payload could not be stored: 503, nothing kept."""
    log.warning("could not store a message for /listen/%s: %s", listener.path, exc.__class__.__name__)
    return fault_response(503, "the message store is unavailable; the payload was not kept, retry later",
                          headers={"Retry-After": "5"})


# The request headers that decide what build_absolute_uri answers (Host is checked against ALLOWED_HOSTS there).
_ORIGIN_KEYS = ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "HTTP_X_FORWARDED_PROTO",
                "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT")
_origins: dict[tuple, str] = {}


def request_origin(request) -> str:
    """`scheme://host` of this request as build_absolute_uri gives it, remembered per distinct
    set of headers: under load every request of a partner carries the same ones."""
    key = tuple(request.META.get(name) for name in _ORIGIN_KEYS)
    origin = _origins.get(key)
    if origin is None:
        origin = request.build_absolute_uri("/")[:-1]
        if len(_origins) >= 256:
            _origins.clear()
        _origins[key] = origin
    return origin


def accepted_body(request, message: Message) -> bytes:
    """The JSON of a 202 receipt: the message id and where its status can be read."""
    status_url = f"{request_origin(request)}/api/v1/messages/{message.pk}/"
    return orjson.dumps({"message_id": str(message.pk), "status_url": status_url})


def accepted_response(request, message: Message) -> HttpResponse:
    response = HttpResponse(accepted_body(request, message), status=202, content_type="application/json")
    response["X-Message-Id"] = str(message.pk)
    return response


def _replay(request, listener: Listener, first: Message) -> HttpResponse:
    """A duplicate (same Idempotency-Key or webhook-id): the first message's receipt, nothing run again."""
    if listener.mode != Listener.Mode.SYNC:
        response = accepted_response(request, first)
    elif first.response_status == 200:
        response = HttpResponse(bytes(first.response_body or b""), status=200, content_type=first.response_content_type)
        response["X-Message-Id"] = str(first.pk)
    elif first.status in Message.FINAL:
        response = fault_response(first.response_status or 500, first.error or first.status, first.pk, listener)
    else:
        response = fault_response(409, "a request with this idempotency key is still running; retry shortly", first.pk,
                                  listener, {"Retry-After": "1"})
    response["Idempotent-Replayed"] = "true"
    return response


def _enabled_flow(listener: Listener):
    flow = getattr(listener, "flow", None)
    return flow if flow is not None and flow.enabled else None


def _answer_sync(listener: Listener, flow, message: Message, run) -> HttpResponse:
    """Run the flow on the stored message and answer with its output or a fault."""
    if run is None:
        return fault_response(500, "this listener has no enabled flow", message.pk, listener)
    try:
        result, failure = run_sync(flow, message, run, listener.timeout_seconds)
    except DatabaseError:  # the run's end could not be recorded; the sweeper runs the message again
        log.warning("could not record a sync run on /listen/%s", listener.path)
        return fault_response(503, "the message store is unavailable; the run could not be recorded", message.pk,
                              listener, {"Retry-After": "5"})
    if failure is not None:
        status = 504 if failure.timed_out else (422 if failure.bad_data else 500)
        return fault_response(status, failure.reason, message.pk, listener)
    response = HttpResponse(result.output, status=200, content_type=result.content_type)
    response["X-Message-Id"] = str(message.pk)
    return response
