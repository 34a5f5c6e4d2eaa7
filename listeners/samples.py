"""A test payload sent from the listener's page, pushed through the real ingest view.

The payload goes through `listeners.views.ingest` as an HTTP request to /listen/<path>
would: the listener's address allow-list, rate limit, authentication, method, content
type, size cap and format check all apply, it is kept as a message (or a rejected one)
and a sync listener runs its flow inline and answers. For a Basic or token listener the
request carries a token issued for the signed-in user for this one call and deleted
right after (it never leaves the server). For an HMAC listener the payload is signed on
the server with its newest signing key, as the partner would sign it, unless the user
gives signature headers (to try a signature of their own). An API-key listener needs the
key header the user gives (keys are stored so that they cannot be read back).
"""
from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

from django.core.handlers.wsgi import WSGIRequest

from accounts.models import ApiToken

from .models import Listener
from .signatures import signature_headers

SAMPLE_TOKEN_SECONDS = 60
SAMPLE_HEADER = "sent from the listener page"
# What of the signed-in user's own request the test request keeps: where it comes from and
# which host it reached (so the allow-list and the receipt's URLs are as for a real push).
KEPT_META = ("REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT", "HTTP_HOST", "wsgi.url_scheme", "HTTP_USER_AGENT",
             "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT")
# Headers the box sets itself (or that would let the test borrow the browser's session).
RESERVED_HEADERS = {"authorization", "cookie", "host", "content-type", "content-length", "transfer-encoding",
                    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port"}


# A test payload that carries any of these keeps the user's own signature instead of one made here.
SIGNATURE_HEADERS = {"webhook-signature", "x-hub-signature-256", "stripe-signature"}


class SampleRefused(Exception):
    """The test payload cannot be sent as given (a reason for the person)."""


@dataclass(frozen=True)
class SampleAnswer:
    """What the listener answered the test payload."""

    status: int
    content_type: str
    body: bytes
    message_id: str | None


def parse_headers(text: str) -> dict[str, str]:
    """`Name: value` lines into a dict; SampleRefused for a malformed or reserved one."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or not all(c.isalnum() or c in "-_" for c in name):
            raise SampleRefused(f"header line {number} is not 'Name: value'")
        if name.lower() in RESERVED_HEADERS:
            raise SampleRefused(f"header {name} is set by the test box itself")
        headers[name] = value.strip()
    return headers


def push_sample(request, listener: Listener, user, data: bytes, method: str, content_type: str,
                headers: dict[str, str] | None = None) -> SampleAnswer:
    """Send `data` to `listener` through the ingest view as `user` (see the module docstring)."""
    from .views import ingest  # the view module imports services that import this app's models

    environ = {key: request.META[key] for key in KEPT_META if key in request.META}
    environ.update({
        "REQUEST_METHOD": method, "PATH_INFO": f"/listen/{listener.path}", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data),
        "HTTP_X_PUSHFLOW_SAMPLE": SAMPLE_HEADER,
    })
    environ.setdefault("SERVER_NAME", "localhost")
    environ.setdefault("SERVER_PORT", "80")
    environ.setdefault("wsgi.url_scheme", "http")
    headers = dict(headers or {})
    keys = (listener.secrets.get("signing_keys") or []) if listener.auth == Listener.Auth.HMAC else []
    if keys and not SIGNATURE_HEADERS & {name.lower() for name in headers}:
        headers.update(signature_headers(listener.signature, str(keys[0]), data, f"msg_sample_{uuid.uuid4().hex}"))
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    token = None
    if listener.auth in (Listener.Auth.BASIC, Listener.Auth.TOKEN):
        token, raw = ApiToken.issue(user, SAMPLE_TOKEN_SECONDS)
        environ["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    try:
        response = ingest(WSGIRequest(environ), listener.path)
    finally:
        if token is not None:
            ApiToken.objects.filter(pk=token.pk).delete()
    return SampleAnswer(response.status_code, response.get("Content-Type", ""), bytes(response.content),
                        response.get("X-Message-Id"))
