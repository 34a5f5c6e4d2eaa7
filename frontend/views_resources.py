"""List, create, edit, enable/disable and delete pages for formats, connections, listeners and
flows. One set of views serves the four; what differs is in resources.py. Only presents:
the serializers validate and the models save."""
from __future__ import annotations

from django.contrib import messages as notices
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from flows.readiness import missing_steps

from .resources import RESOURCES, build_form, delete, may_change, read_sections, save


def _resource(kind_plural: str):
    resource = RESOURCES.get(kind_plural)
    if resource is None:
        raise Http404("no such page")
    return resource


def _object(resource, request, pk, change: bool = False):
    instance = resource.queryset(request.user).filter(pk=pk).first()
    if instance is None:
        raise Http404(f"no such {resource.singular}")
    if change and not may_change(request.user, instance):
        raise PermissionDenied(f"only the owner of this {resource.singular} may change it")
    return instance


def _next(request, default: str) -> str:
    """Where to go back to: a path on this site only."""
    wanted = request.POST.get("next", "")
    return wanted if wanted.startswith("/") and not wanted.startswith("//") else default


def _after_save(resource, instance) -> str:
    if resource.plural == "flows":
        return f"/flows/{instance.pk}/"
    if resource.plural == "listeners":
        return f"/listeners/{instance.pk}/"
    return f"/{resource.plural}/"


@login_required
def resource_list(request, plural):
    resource = _resource(plural)
    objects = list(resource.queryset(request.user).order_by("name"))
    for obj in objects:
        obj.changeable = may_change(request.user, obj)
        if plural == "flows":
            obj.missing = missing_steps(obj)
    return render(request, "frontend/list.html", {"resource": resource, "objects": objects})


def _kind(resource, request, instance) -> str:
    kind = resource.kind_of(instance, request.GET.get("kind") or request.POST.get("kind") or "")
    if resource.registry is not None and kind not in resource.registry:
        return ""
    return kind


@login_required
def resource_edit(request, plural, pk=None):
    """The create page (pk None) and the edit page of one object."""
    resource = _resource(plural)
    instance = _object(resource, request, pk, change=True) if pk is not None else None
    kind = _kind(resource, request, instance)
    if resource.registry is not None and not kind:
        return render(request, "frontend/pick_kind.html", {"resource": resource, "kinds": resource.registry.choices()})
    values, errors, status = (resource.values(instance) if instance is not None else {}), {}, 200
    if request.method == "POST":
        sections = resource.sections(request.user, instance, kind, request.POST)
        values, errors = read_sections(sections, request.POST)
        if not any(errors.values()):
            data = resource.payload(values, kind)
            if plural == "flows" and instance is None:
                data["enabled"] = False  # enabled from the designer, once nothing is missing
            saved, errors = save(resource, request, data, instance)
            if saved is not None:
                notices.success(request, f"Saved {resource.singular} {saved.name!r}.")
                return redirect(_after_save(resource, saved))
        status = 400
    form = build_form(resource, request.user, instance, kind, values, errors, post=request.POST or None)
    return render(request, "frontend/edit.html", {
        "resource": resource, "instance": instance, "kind": kind, "sections": form,
        "general": (errors.get("", {}) or {}).get("", []),
        "kind_label": resource.registry.get(kind).label if resource.registry is not None else "",
    }, status=status)


@login_required
@require_POST
def resource_toggle(request, plural, pk):
    resource = _resource(plural)
    instance = _object(resource, request, pk, change=True)
    if not hasattr(instance, "enabled"):
        raise Http404(f"a {resource.singular} is not enabled or disabled")
    enable = not instance.enabled
    if enable and plural == "flows":
        missing = missing_steps(instance)
        if missing:
            notices.error(request, "Not enabled; still missing: " + "; ".join(missing))
            return redirect(_next(request, f"/flows/{pk}/"))
    _, errors = save(resource, request, {"enabled": enable}, instance)
    if errors:
        notices.error(request, f"Not changed: {errors}")
    else:
        notices.success(request, f"{'Enabled' if enable else 'Disabled'} {resource.singular} {instance.name!r}.")
    return redirect(_next(request, f"/{plural}/"))


@login_required
@require_POST
def resource_delete(request, plural, pk):
    resource = _resource(plural)
    instance = _object(resource, request, pk, change=True)
    problem = delete(resource, request, instance)
    if problem:
        notices.error(request, f"Not deleted: {problem}")
    else:
        notices.success(request, f"Deleted {resource.singular} {instance.name!r}.")
    return redirect(f"/{plural}/")
