"""Runs of the user's flows with a progress bar each, and the small JSON the bars poll
(static/frontend/progress.js) while a run is going."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render

from config.api import visible_to
from flows.models import FlowRun

MAX_POLLED = 100


def _runs(user):
    queryset = FlowRun.objects.select_related("flow", "message").defer(
        "message__body", "message__body_text", "message__response_body", "message__headers")
    return visible_to(user, queryset, "flow__owner", ("flow__teams",))


def progress_of(run: FlowRun) -> dict:
    """Records done and bytes read; `total_bytes` is the payload's size when the run has a message,
    and `percent` the share of it read (None when the size is unknown)."""
    total = run.message.size if run.message_id and run.message is not None else 0
    finished = run.status != FlowRun.Status.RUNNING
    percent = 100 if finished and total else (min(100, run.bytes_read * 100 // total) if total else None)
    return {"id": run.pk, "status": run.status, "records_in": run.records_in, "records_out": run.records_out,
            "records_rejected": run.records_rejected, "bytes_read": run.bytes_read, "total_bytes": total,
            "percent": percent, "error": run.error[:200], "finished": finished}


@login_required
def run_list(request):
    runs = _runs(request.user).order_by("-started_at", "-id")[:100]
    return render(request, "frontend/runs.html", {"runs": runs,
                                                  "running": _runs(request.user).filter(status="running").count()})


@login_required
def run_progress(request):
    """{"runs": [...]} for the ids asked (`ids=1,2,3`), only those the user may see."""
    wanted = [part for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()][:MAX_POLLED]
    if request.GET.get("ids") and not wanted:
        return JsonResponse({"ids": ["comma-separated run ids"]}, status=400)
    runs = _runs(request.user).filter(pk__in=[int(p) for p in wanted])
    return JsonResponse({"runs": [progress_of(run) for run in runs]})
