"""HTTP transport (httpx): send a flow's output to another service.

Options: `url` (placeholders `{message_id}`, `{flow}`, `{date}`, `{time}`),
`method`, `headers`, `auth` none|basic|bearer|api_key (`username`, `api_key_header`;
the password, token or key are secrets), `timeout`, `retries`. Every address is
checked by the outbound guard, and the request goes to the checked address. Connect
errors, 429 and 5xx are tried again with backoff (a Retry-After is honoured, up to a
cap), then fail as retryable, so the message is retried later; other 4xx fail at
once. A failure keeps the remote status and the start of its body in the run log;
secrets never appear there. Each request carries `Idempotency-Key: <message id>`,
so a receiver can drop a repeat.

Destination options: `empty` (what an empty reply means: ignore|warn|fail) and
`answer` (`output`, the default, or `reply`: a sync caller gets the remote reply).
"""
from __future__ import annotations

import functools
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..outbound import OutboundRefused, check_url
from . import Delivery, SourceItem, Transport, TransportError, register_transport
from .folder import render_file_name

BODY_IN_LOG = 500
MAX_RETRY_AFTER = 30.0
RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Reply:
    """What the remote service answered, for a flow that answers its caller with it."""

    description: str
    status: int
    content_type: str
    body: bytes

    def __str__(self) -> str:
        return self.description


def _render_url(template: str, placeholders: dict) -> str:
    # The same placeholder rules as file names: a value cannot add path segments or a query.
    return render_file_name(template, placeholders) if "{" in template else template


def _auth_headers(options: dict, secrets: dict) -> tuple[dict, httpx.BasicAuth | None]:
    auth = options.get("auth") or "none"
    if auth == "basic":
        if not options.get("username") or not secrets.get("password"):
            raise TransportError("basic auth needs a username and secrets.password")
        return {}, httpx.BasicAuth(options["username"], secrets["password"])
    if auth == "bearer":
        if not secrets.get("token"):
            raise TransportError("bearer auth needs secrets.token")
        return {"Authorization": f"Bearer {secrets['token']}"}, None
    if auth == "api_key":
        if not secrets.get("api_key"):
            raise TransportError("api_key auth needs secrets.api_key")
        return {options.get("api_key_header") or "X-API-Key": secrets["api_key"]}, None
    return {}, None


@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per process for each `verify_tls` setting. Building one loads the whole CA
    bundle (17 ms of CPU, more than the rest of a delivery), and a context is safe to share:
    the host name each request checks is its own (SNI / check_hostname per connection)."""
    return httpx.create_ssl_context(verify=bool(verify))


def _retry_after(response: httpx.Response, attempt: int) -> float:
    value = response.headers.get("Retry-After", "")
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    return min(0.5 * 2 ** attempt, MAX_RETRY_AFTER)


def send(options: dict, secrets: dict, body: bytes | Delivery | None, content_type: str, placeholders: dict,
         method: str | None = None) -> httpx.Response:
    """One request through the guard, with the connection's auth, retried on transient failures.
    A `Delivery` body is read from its spool file in chunks, again on each try."""
    url = _render_url(options.get("url") or "", placeholders)
    try:
        target = check_url(url)
    except OutboundRefused as exc:
        raise TransportError(exc.reason) from None
    parts = urlsplit(url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    pinned = urlunsplit((parts.scheme, f"{address}:{target.port}", parts.path or "/", parts.query, ""))
    headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
    auth_headers, basic = _auth_headers(options, secrets)
    headers.update(auth_headers)
    headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
    if body is not None:
        headers.setdefault("Content-Type", content_type)
    if isinstance(body, Delivery):
        headers["Content-Length"] = str(body.size)  # not chunked: the receiver sees the same request either way
    if placeholders.get("message_id"):
        headers.setdefault("Idempotency-Key", str(placeholders["message_id"]))
    timeout = float(options.get("timeout") or 30)
    retries = int(options.get("retries", 3))
    method = (method or options.get("method") or "POST").upper()
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(timeout=timeout, follow_redirects=False, verify=_tls_context(options.get("verify_tls", True))) as client:
        for attempt in range(retries + 1):
            try:
                content = body.chunks() if isinstance(body, Delivery) else body
                response = client.request(method, pinned, content=content, headers=headers, auth=basic,
                                          extensions=extensions)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
                if attempt < retries:
                    time.sleep(min(0.5 * 2 ** attempt, MAX_RETRY_AFTER))
                    continue
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not connect"
                raise TransportError(f"{method} {target.host}: {kind} after {attempt + 1} tries", retryable=True) from None
            if response.status_code in RETRY_STATUSES and attempt < retries:
                time.sleep(_retry_after(response, attempt))
                continue
            return response
    raise AssertionError("unreachable")


def _failure(response: httpx.Response, host: str) -> TransportError:
    text = response.content[:BODY_IN_LOG].decode("utf-8", "replace")
    more = "..." if len(response.content) > BODY_IN_LOG else ""
    return TransportError(f"{response.request.method} {host} answered {response.status_code}: {text}{more}",
                          retryable=response.status_code in RETRY_STATUSES)


def _check_reply(response: httpx.Response, rules: dict, host: str) -> None:
    """Read the reply with the format its content type maps to: a service answering 200 with
    a body it did not mean (an HTML error page, broken JSON) fails the delivery."""
    from formats.codecs import CodecError, codecs

    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    kind = rules.get(media) or rules.get("*")
    if not kind or not response.content:
        return
    if kind not in codecs:
        raise TransportError(f"reply_formats names {kind!r}, which is not a format kind")
    try:
        codecs.get(kind).validate(response.content, {})
    except CodecError as exc:
        raise TransportError(f"{host} answered {response.status_code} with a {media or 'body'} that is not valid {kind}: {exc}") from None


@register_transport
class HttpTransport(Transport):
    kind = "http"
    label = "HTTP service"
    accepts_file = True
    options_schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1, "pattern": "^https?://", "title": "URL (placeholders allowed)"},
            "method": {"enum": ["POST", "PUT", "PATCH", "GET", "DELETE"], "default": "POST"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "auth": {"enum": ["none", "basic", "bearer", "api_key"], "default": "none"},
            "username": {"type": "string"},
            "api_key_header": {"type": "string", "default": "X-API-Key"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600, "default": 30},
            "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
            "verify_tls": {"type": "boolean", "default": True},
        },
        "required": ["url"],
        "additionalProperties": True,
    }
    destination_options_schema = {
        "type": "object",
        "properties": {
            "empty": {"enum": ["ignore", "warn", "fail"], "default": "ignore", "title": "When the reply is empty"},
            "answer": {"enum": ["output", "reply"], "default": "output", "title": "What a sync caller gets"},
            "reply_formats": {
                "type": "object", "additionalProperties": {"type": "string"},
                "title": "Reply checks by content type, e.g. {\"application/json\": \"json\", \"text/xml\": \"xml\"}",
            },
        },
    }
    secret_options = ("password", "token", "api_key")

    def write(self, options, secrets, destination, delivery: Delivery):
        body = delivery if delivery.file is not None else delivery.data
        response = send(options, secrets, body, delivery.content_type, delivery.placeholders)
        host = urlsplit(options.get("url") or "").hostname or "?"
        if response.status_code >= 400:
            raise _failure(response, host)
        description = f"{response.request.method} {host} answered {response.status_code} ({len(response.content)} bytes)"
        if not response.content and (destination.get("empty") or "ignore") != "ignore":
            if destination["empty"] == "fail":
                raise TransportError(f"{host} answered {response.status_code} with an empty body")
            description += "; warning: the reply was empty"
        _check_reply(response, destination.get("reply_formats") or {}, host)
        if destination.get("answer") == "reply":
            content_type = response.headers.get("Content-Type", "application/octet-stream")
            return Reply(description, response.status_code, content_type, response.content)
        return description

    def read(self, options, secrets, source):
        """One GET of the URL: its reply is the payload (an empty reply is nothing to run)."""
        response = send({**options}, secrets, None, "", {}, method="GET")
        host = urlsplit(options.get("url") or "").hostname or "?"
        if response.status_code >= 400:
            raise _failure(response, host)
        if response.content:
            yield SourceItem(f"GET {host}", response.content, response.headers.get("Content-Type", ""))

    def test(self, options, secrets) -> str:
        response = send({**options, "retries": 0}, secrets, None, "", {}, method="HEAD")
        host = urlsplit(options.get("url") or "").hostname
        if response.status_code in (401, 403):
            raise TransportError(f"{host} refused the credentials ({response.status_code}); check the auth settings")
        if response.status_code >= 500:
            raise TransportError(f"{host} answered {response.status_code}: the service has a fault")
        return f"{host} answered {response.status_code}"
