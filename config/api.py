"""API-wide pieces: exception handler, owner permission and querysets, shared serializer parts."""
from __future__ import annotations

import logging
import re
import uuid

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import ProtectedError, Q
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.audit import record_change
from lib.registry import options_errors

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, plus clear answers for database refusals instead of a 500."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, ProtectedError):
        users = sorted({str(obj) for obj in exc.protected_objects})[:5]
        return Response({"detail": f"still in use by: {', '.join(users)}; change or delete those first"},
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, IntegrityError):
        return Response({"detail": "this conflicts with an existing object (a name, path or link must be unique)"},
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DatabaseError):
        log.warning("database error in API: %s", exc.__class__.__name__)
        return Response({"detail": "The database is unavailable; try again."}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    return response


def visible_to(user, queryset, owner_field: str = "owner", team_fields: tuple[str, ...] | None = None):
    """Objects `user` may see: their own, those shared with a team (Django group) they are
    in, or everything for a superuser. `team_fields` name the teams relations to follow
    (default: `teams` beside the owner field, e.g. `flow__teams` for `flow__owner`)."""
    if user.is_superuser:
        return queryset
    visible = Q(**{owner_field: user})
    if team_fields is None:
        team_fields = getattr(queryset.model, "TEAM_FIELDS", None)
    if team_fields is None:
        team_fields = (owner_field[: -len("owner")] + "teams",) if owner_field.endswith("owner") else ()
    groups = user.groups.values("pk")
    for field in team_fields:
        shared = queryset.model._default_manager.filter(**{f"{field}__in": groups}).values("pk")
        visible |= Q(pk__in=shared)
    return queryset.filter(visible)


class IsOwnerOrAdmin(permissions.BasePermission):
    """Object access: the owner and superusers may do anything; a member of a team the object
    is shared with may read it and use the view's `team_actions` (querysets are already
    filtered to what the user may see)."""

    owner_field = "owner"

    def has_object_permission(self, request, view, obj):
        if request.user.is_superuser:
            return True
        if request.method in permissions.SAFE_METHODS or getattr(view, "action", None) in getattr(view, "team_actions", ()):
            return True
        owner = obj
        for part in getattr(view, "owner_field", self.owner_field).split("__"):
            owner = getattr(owner, part, None)
        return owner == request.user


class OwnedModelViewSet(viewsets.ModelViewSet):
    """CRUD on objects with an `owner`; the creator becomes the owner."""

    permission_classes = [permissions.IsAuthenticated, IsOwnerOrAdmin]

    def get_queryset(self):
        return visible_to(self.request.user, self.queryset.all())

    # Each change and its audit entry commit together or not at all.

    def perform_create(self, serializer):
        with transaction.atomic():
            instance = serializer.save(owner=self.request.user)
            record_change(self.request.user, "create", instance, None, self.get_serializer(instance).data, self._secrets_given())

    def perform_update(self, serializer):
        before = self.get_serializer(serializer.instance).data
        with transaction.atomic():
            instance = serializer.save()
            record_change(self.request.user, "update", instance, before, self.get_serializer(instance).data, self._secrets_given())

    def perform_destroy(self, instance):
        before = self.get_serializer(instance).data
        pk = instance.pk
        with transaction.atomic():
            instance.delete()
            instance.pk = pk
            record_change(self.request.user, "delete", instance, before, None)

    def _secrets_given(self) -> list[str]:
        secrets = self.request.data.get("secrets") if hasattr(self.request.data, "get") else None
        return list(secrets) if isinstance(secrets, dict) else []


class OwnedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A reference to another object the caller owns (any object, for a superuser)."""

    def get_queryset(self):
        request = self.context.get("request")
        queryset = super().get_queryset()
        if request is None:
            return queryset.none()
        return visible_to(request.user, queryset)


class TeamsField(serializers.PrimaryKeyRelatedField):
    """A team (Django group) an object is shared with: only teams the caller is in."""

    def get_queryset(self):
        request = self.context.get("request")
        queryset = super().get_queryset()
        if request is None:
            return queryset.none()
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)


def teams_field():
    from django.contrib.auth.models import Group

    return TeamsField(many=True, required=False, queryset=Group.objects.all(),
                      help_text="Teams (groups) this is shared with: members may read and use it, only the owner may change it.")


class KindOptionsSerializerMixin:
    """Validates `kind` against a registry and `options` against that kind's JSON Schema."""

    registry = None  # set by subclasses

    def validate(self, attrs):
        attrs = super().validate(attrs)
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        if kind not in self.registry:
            raise serializers.ValidationError({"kind": [f"unknown kind {kind!r}; use one of {', '.join(self.registry.kinds())}"]})
        options = attrs.get("options", getattr(self.instance, "options", {}) or {})
        problems = options_errors(self.registry.get(kind).options_schema, options)
        if problems:
            raise serializers.ValidationError({"options": problems})
        return attrs


_ID = re.compile(r"^[0-9]{1,18}$")


def id_param(params, name: str) -> int | None:
    """An integer id query parameter, or None when absent; a 400 naming it when it is not one."""
    value = params.get(name)
    if not value:
        return None
    if not _ID.match(value):
        raise serializers.ValidationError({name: ["must be a numeric id"]})
    return int(value)


def uuid_param(params, name: str) -> uuid.UUID | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise serializers.ValidationError({name: ["must be a message id (a UUID)"]}) from None
