"""A listener's own page (full URL, a ready curl command, its auth settings, a box that sends a
test payload through the real ingest path and shows the answer with a link to the message it
made) and the connection test button."""
from __future__ import annotations

import shlex
from http import HTTPStatus

from django.conf import settings
from django.contrib import messages as notices
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from connections.services import test_connection
from listeners.models import Listener
from listeners.samples import SampleRefused, parse_headers, push_sample

from .resources import RESOURCES, may_change
from .views_resources import _object

MAX_SAMPLE = 1024 * 1024
MAX_SHOWN = 64 * 1024
TEST_METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")


def listener_url(request, listener: Listener) -> str:
    base = settings.PUSHFLOW_PUBLIC_URL.rstrip("/") or request.build_absolute_uri("/").rstrip("/")
    return f"{base}/listen/{listener.path}"


def _content_type(listener: Listener) -> str:
    return listener.format.codec.content_type if listener.format is not None else "application/json"


def curl_command(request, listener: Listener) -> str:
    """A curl command a person can paste, with placeholders for their own credentials."""
    method = listener.allowed_methods[0]
    parts = ["curl", "-i", "-X", method, shlex.quote(listener_url(request, listener)),
             "-H", shlex.quote(f"Content-Type: {_content_type(listener)}")]
    if listener.auth == Listener.Auth.TOKEN:
        parts += ["-H", '"Authorization: Bearer $PUSHFLOW_TOKEN"']
    elif listener.auth == Listener.Auth.BASIC:
        parts += ["-u", '"$PUSHFLOW_USER:$PUSHFLOW_PASSWORD"']
    elif listener.auth == Listener.Auth.API_KEY:
        parts += ["-H", f'"{listener.api_key_header}: $PUSHFLOW_API_KEY"']
    elif listener.auth == Listener.Auth.HMAC:
        parts += ["-H", '"webhook-id: $ID"', "-H", '"webhook-timestamp: $TS"', "-H", '"webhook-signature: $SIG"']
    parts += ["--data-binary", "@payload"]
    return " ".join(parts)


@login_required
def listener_detail(request, pk):
    listener = _object(RESOURCES["listeners"], request, pk)
    sample = listener.format.sample if listener.format is not None and listener.format.sample else '{"hello": "world"}'
    answer = request.session.get("last_sample")
    return render(request, "frontend/listener.html", {
        "listener": listener, "url": listener_url(request, listener), "curl": curl_command(request, listener),
        "content_type": _content_type(listener), "sample": sample, "changeable": may_change(request.user, listener),
        "flow": getattr(listener, "flow", None), "secret_names": sorted(listener.secrets),
        "recent": listener.messages.defer("body", "body_text", "response_body").order_by("-received_at")[:10],
        "answer": answer if isinstance(answer, dict) and answer.get("listener") == listener.pk else None,
        "methods": TEST_METHODS, "default_method": listener.allowed_methods[0],
    })


@login_required
@require_POST
def listener_test(request, pk):
    """Push the box's payload through the listener's real ingest path as the signed-in user and
    keep the answer (status, body, message) in the session for the page to show."""
    listener = _object(RESOURCES["listeners"], request, pk)
    data = request.POST.get("body", "").encode("utf-8")
    method = request.POST.get("method", "").strip().upper() or listener.allowed_methods[0]
    try:
        if method not in TEST_METHODS:
            raise SampleRefused(f"method {method[:20]!r} is not one of {', '.join(TEST_METHODS)}")
        if len(data) > MAX_SAMPLE:
            raise SampleRefused(f"the test box sends at most {MAX_SAMPLE} bytes")
        headers = parse_headers(request.POST.get("headers", ""))
        answer = push_sample(request, listener, request.user, data, method,
                             request.POST.get("content_type", "").strip() or _content_type(listener), headers)
    except SampleRefused as exc:
        notices.error(request, str(exc))
        return redirect(f"/listeners/{pk}/")
    request.session["last_sample"] = {
        "listener": listener.pk, "status": answer.status, "reason": HTTPStatus(answer.status).phrase,
        "content_type": answer.content_type, "message": answer.message_id,
        "body": answer.body[:MAX_SHOWN].decode("utf-8", "replace"), "cut": len(answer.body) > MAX_SHOWN,
    }
    return redirect(f"/listeners/{pk}/")


@login_required
@require_POST
def connection_test(request, pk):
    connection = _object(RESOURCES["connections"], request, pk)
    ok, detail = test_connection(connection)
    (notices.success if ok else notices.error)(request, f"{'Works' if ok else 'Does not work'}: {detail}")
    return redirect(f"/connections/{pk}/edit" if may_change(request.user, connection) else "/connections/")
