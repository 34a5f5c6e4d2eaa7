"""The messages page (filters, live table, bulk resubmit) and a message's own page (headers,
readable payload, runs with their logs, actions). Only presents: the work is in listeners."""
from __future__ import annotations

from django.contrib import messages as notices
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from config.api import visible_to
from flows.models import Flow, FlowRun
from listeners.models import Listener, Message
from listeners.queries import filter_messages
from listeners.services import (
    ResubmitRefused,
    cancel_message,
    edit_and_resubmit,
    resubmit_message,
    resubmit_messages,
)

from .payloads import pretty

FILTERS = ("listener", "flow", "status", "since", "until", "q")


def _filtered(request):
    """The user's messages under the page's filters, and the filter error to show, if any."""
    queryset = visible_to(request.user, Message.objects.select_related("listener", "flow")).defer(
        "body", "body_text", "response_body")
    params = {k: v for k, v in request.GET.items() if k in FILTERS and v}
    try:
        return filter_messages(queryset, params), params, ""
    except ValidationError as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {"filter": exc.detail}
        name, reasons = next(iter(detail.items()))
        return queryset.none(), params, f"{name}: {reasons[0] if isinstance(reasons, list) else reasons}"


@login_required
def message_list(request):
    queryset, params, problem = _filtered(request)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    context = {
        "page": page, "params": params, "problem": problem, "statuses": Message.Status.values,
        "listeners": visible_to(request.user, Listener.objects.all()).order_by("name"),
        "flows": visible_to(request.user, Flow.objects.all()).order_by("name"),
        "query": request.GET.urlencode(),
    }
    template = "frontend/partials/message_rows.html" if request.GET.get("partial") else "frontend/messages.html"
    return render(request, template, context)


@login_required
@require_POST
def message_bulk_resubmit(request):
    queryset, params, problem = _filtered(request)
    if problem:
        notices.error(request, f"Nothing resubmitted: {problem}")
    else:
        counts = resubmit_messages(queryset)
        notices.success(request, f"Resubmitted {counts['resubmitted']} messages; skipped {counts['skipped']}.")
    return redirect(f"/messages/?{request.GET.urlencode()}")


def _message(request, pk) -> Message:
    runs = Prefetch("runs", queryset=FlowRun.objects.order_by("started_at"))
    message = visible_to(request.user, Message.objects.select_related("listener", "flow").prefetch_related(runs)).filter(pk=pk).first()
    if message is None:
        raise Http404("no such message")
    return message


@login_required
def message_detail(request, pk):
    message = _message(request, pk)
    body = message.read_body()
    shown, shown_as = pretty(body, message.content_type)
    response = ""
    if message.response_body:
        response = pretty(bytes(message.response_body), message.response_content_type)[0]
    return render(request, "frontend/message.html", {
        "message": message, "payload": shown, "payload_kind": shown_as, "response": response,
        "editable": body.decode("utf-8", "replace"),
    })


@login_required
def message_download(request, pk):
    message = _message(request, pk)
    answer = HttpResponse(message.read_body(), content_type=message.content_type or "application/octet-stream")
    answer["Content-Disposition"] = f'attachment; filename="{message.pk}.body"'
    answer["X-Content-Type-Options"] = "nosniff"
    return answer


@login_required
@require_POST
def message_action(request, pk, action):
    message = _message(request, pk)
    try:
        if action == "resubmit":
            resubmit_message(message)
            notices.success(request, "Resubmitted: a new run starts shortly.")
        elif action == "cancel":
            cancel_message(message, request.user)
            notices.success(request, "Cancelled.")
        elif action == "edit":
            copy = edit_and_resubmit(message, request.POST.get("body", "").encode("utf-8"), request.user)
            notices.success(request, "The edited payload was resubmitted as this new message.")
            return redirect("message", pk=copy.pk)
        else:
            raise Http404("no such action")
    except ResubmitRefused as exc:
        notices.error(request, str(exc))
    return redirect("message", pk=message.pk)
