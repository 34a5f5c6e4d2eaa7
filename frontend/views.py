"""The dashboard (home page): the user's listeners with their counts, last message time and a
silence warning, a chart of messages per minute per listener over the last hour (drawn by
static/frontend/dashboard.js from `dashboard_data`), and the most recent messages."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max
from django.db.models.functions import TruncMinute
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from config.api import visible_to
from listeners.models import Listener, Message

WINDOW_MINUTES = 60
COUNTS_HOURS = 24


def listener_health(user, now=None) -> list[dict]:
    """Per visible listener: counts by status over the last day, last message time, and
    whether it has been silent longer than its expected gap."""
    now = now or timezone.now()
    listeners = list(visible_to(user, Listener.objects.select_related("flow")).order_by("name"))
    ids = [listener.pk for listener in listeners]
    counts: dict[int, dict[str, int]] = {}
    recent = Message.objects.filter(listener_id__in=ids, received_at__gte=now - timedelta(hours=COUNTS_HOURS))
    for row in recent.values("listener_id", "status").annotate(n=Count("id")).order_by():
        counts.setdefault(row["listener_id"], {})[row["status"]] = row["n"]
    last = dict(Message.objects.filter(listener_id__in=ids).values("listener_id").annotate(at=Max("received_at"))
                .order_by().values_list("listener_id", "at"))
    rows = []
    for listener in listeners:
        by_status = counts.get(listener.pk, {})
        at = last.get(listener.pk)
        gap = listener.expected_gap_minutes
        silent = bool(gap and listener.enabled and (at is None or now - at > timedelta(minutes=gap)))
        rows.append({
            "listener": listener, "succeeded": by_status.get("succeeded", 0),
            "failed": by_status.get("failed", 0) + by_status.get("rejected", 0),
            "waiting": sum(by_status.get(s, 0) for s in ("received", "queued", "running")),
            "last": at, "silent": silent,
            "silent_for": int((now - at).total_seconds() // 60) if at else None,
        })
    return rows


def messages_per_minute(user, now=None) -> dict:
    """{"minutes": [iso...], "series": [{"listener", "name", "counts": [...]}]} for the last hour."""
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=WINDOW_MINUTES - 1)
    minutes = [start + timedelta(minutes=i) for i in range(WINDOW_MINUTES)]
    index = {m: i for i, m in enumerate(minutes)}
    listeners = {pk: name for pk, name in visible_to(user, Listener.objects.all()).values_list("pk", "name")}
    rows = (Message.objects.filter(listener_id__in=list(listeners), received_at__gte=start)
            .annotate(minute=TruncMinute("received_at")).values("listener_id", "minute")
            .annotate(n=Count("id")).order_by())
    series: dict[int, list[int]] = {}
    for row in rows:
        at = row["minute"]
        if timezone.is_naive(at):
            at = timezone.make_aware(at, timezone.get_current_timezone())
        slot = index.get(at.astimezone(now.tzinfo).replace(second=0, microsecond=0))
        if slot is not None:
            series.setdefault(row["listener_id"], [0] * WINDOW_MINUTES)[slot] += row["n"]
    return {"minutes": [m.isoformat() for m in minutes],
            "series": [{"listener": pk, "name": listeners[pk], "counts": counts}
                       for pk, counts in sorted(series.items(), key=lambda item: listeners[item[0]])]}


@login_required
def home(request):
    recent = (visible_to(request.user, Message.objects.select_related("listener", "flow"))
              .defer("body", "body_text", "response_body").order_by("-received_at")[:20])
    health = listener_health(request.user)
    return render(request, "frontend/home.html", {
        "health": health, "silent": [row for row in health if row["silent"]], "recent": recent,
        "totals": {key: sum(row[key] for row in health) for key in ("succeeded", "failed", "waiting")},
    })


@login_required
def dashboard_data(request):
    return JsonResponse(messages_per_minute(request.user))
