"""The flow designer (source -> mapping -> destination as a pipeline, each step edited in
place, what is missing flagged) and the mapping editor page, whose plain JS module
(static/frontend/mapping.js) previews and saves through the flows API."""
from __future__ import annotations

from django.contrib import messages as notices
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from config.api import visible_to
from flows.expressions import FUNCTIONS
from flows.models import Flow
from flows.readiness import missing_steps
from formats.codecs import CodecError
from listeners.models import Message

from .resources import RESOURCES, build_form, may_change, read_sections, save
from .views_resources import _object

# The steps the designer edits in place, by the resource sections they hold.
STEPS = {"source": ("", "source_options."), "destination": ("destination.", "destination.options.")}

JSONATA_FUNCTIONS = (
    "$string(v)", "$number(v)", "$boolean(v)", "$exists(v)", "$type(v)", "$length(s)", "$substring(s, start, len)",
    "$substringBefore(s, chars)", "$substringAfter(s, chars)", "$uppercase(s)", "$lowercase(s)", "$trim(s)",
    "$pad(s, width, char)", "$contains(s, pattern)", "$split(s, sep)", "$join(array, sep)", "$replace(s, pattern, new)",
    "$match(s, pattern)", "$sum(array)", "$count(array)", "$max(array)", "$min(array)", "$average(array)",
    "$round(n, places)", "$floor(n)", "$ceil(n)", "$abs(n)", "$now()", "$millis()", "$fromMillis(ms)",
    "$toMillis(iso)", "$keys(obj)", "$merge(array)", "$distinct(array)", "$sort(array)", "$filter(array, fn)",
    "$map(array, fn)",
)
PUSHFLOW_FUNCTIONS = {
    "lookup": "$lookup(table, key)", "coalesce": "$coalesce(a, b)", "parseDate": "$parseDate(text, format)",
    "formatDate": "$formatDate(iso, format)", "toTimeZone": "$toTimeZone(iso, zone)",
}


def _flow(request, pk, change=False) -> Flow:
    return _object(RESOURCES["flows"], request, pk, change=change)


def _designer(request, flow: Flow, values=None, errors=None, open_step: str = "", status: int = 200):
    resource = RESOURCES["flows"]
    stored = resource.values(flow)
    sections = build_form(resource, request.user, flow, "", values or stored, errors,
                          post=request.POST if values else None)
    by_prefix = {s["prefix"]: s for s in sections}
    return render(request, "frontend/flow.html", {
        "flow": flow, "missing": missing_steps(flow), "changeable": may_change(request.user, flow),
        "steps": {name: [by_prefix[p] for p in prefixes] for name, prefixes in STEPS.items()},
        "open_step": open_step, "general": ((errors or {}).get("") or {}).get("", []),
        "fields": (flow.mapping or {}).get("fields", []),
        "runs": flow.runs.select_related("message").order_by("-started_at")[:10],
    }, status=status)


@login_required
def flow_detail(request, pk):
    return _designer(request, _flow(request, pk))


@login_required
@require_POST
def flow_step(request, pk, step):
    """Save one step of the designer; its errors come back beside its fields, the step open."""
    flow = _flow(request, pk, change=True)
    if step not in STEPS:
        raise Http404("no such step")
    resource = RESOURCES["flows"]
    sections = [s for s in resource.sections(request.user, flow, "", request.POST) if s.prefix in STEPS[step]]
    read, errors = read_sections(sections, request.POST)
    if not any(errors.values()):
        data = resource.payload({"": {}, **read}, "")
        saved, errors = save(resource, request, data, flow)
        if saved is not None:
            notices.success(request, f"Saved the {step} of {saved.name!r}.")
            return redirect(f"/flows/{pk}/")
    values = {**resource.values(flow), **read}
    return _designer(request, flow, values, errors, open_step=step, status=400)


def _inferred(fmt, data: bytes) -> tuple[list[str], str]:
    infer = getattr(fmt.codec, "infer_fields", None)
    if infer is None or not data:
        return [], ""
    try:
        return infer(data, fmt.options_for()), ""
    except CodecError as exc:
        return [], f"the fields could not be read from it: {exc}"


@login_required
def mapping_editor(request, pk):
    flow = _flow(request, pk)
    messages = []
    if flow.listener_id is not None:
        messages = list(visible_to(request.user, Message.objects.filter(listener_id=flow.listener_id))
                        .exclude(status="rejected").defer("body", "body_text", "response_body")
                        .order_by("-received_at")[:20])
    chosen = None
    wanted = request.GET.get("message", "")
    if wanted:
        chosen = next((m for m in messages if str(m.pk) == wanted), None)
        if chosen is None:
            notices.error(request, "That message is not one of this flow's listener's recent messages; using the sample.")
    if chosen is not None:
        source, problem = _inferred(flow.source_format, Message.objects.get(pk=chosen.pk).read_body())
        origin = f"message {chosen.pk}"
    else:
        source, problem = _inferred(flow.source_format, flow.source_format.sample.encode("utf-8"))
        origin = "the format's sample" if flow.source_format.sample else ""
    targets = [f.get("target") for f in (flow.mapping or {}).get("fields", []) if isinstance(f, dict)]
    if flow.destination_format is not None and flow.destination_format.sample:
        more, _ = _inferred(flow.destination_format, flow.destination_format.sample.encode("utf-8"))
        targets += [t for t in more if t not in targets]
    config = {
        "flow": flow.pk, "mapping": flow.mapping or {"fields": []}, "source": source, "targets": targets,
        "message": str(chosen.pk) if chosen else "", "sample": flow.source_format.sample,
        "functions": list(JSONATA_FUNCTIONS) + [PUSHFLOW_FUNCTIONS[n] for n in FUNCTIONS if n in PUSHFLOW_FUNCTIONS],
        "changeable": may_change(request.user, flow),
    }
    return render(request, "frontend/mapping.html", {
        "flow": flow, "config": config, "messages_to_pick": messages, "chosen": chosen, "origin": origin,
        "problem": problem,
    })
