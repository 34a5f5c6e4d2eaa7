"""What the create/edit pages of formats, connections, listeners and flows show, and how a
posted page becomes the API's JSON. Each resource is described by JSON Schemas (its own
fields, the options of its kind from the codec/transport registry, its secrets) drawn by
schema_forms; validation and saving go through the API's serializers, audit entry included.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from accounts.audit import record_change
from config.api import visible_to
from connections.api.serializers import ConnectionSerializer
from connections.models import Connection
from connections.transports import transports
from flows.api.serializers import RETRY_SCHEMA, FlowSerializer
from flows.models import Flow
from formats.api.serializers import FormatSerializer
from formats.codecs import codecs
from formats.models import Format
from listeners.api.serializers import METHODS, ListenerSerializer
from listeners.models import Listener
from listeners.signatures import SCHEMES

from .schema_forms import errors_by_field, messages_of, read_form, schema_fields

NAME = {"type": "string", "title": "Name", "minLength": 1}
TEXTAREA = {"type": "string", "x-widget": "textarea"}


def _choices(objects, label=str) -> list[tuple[int, str]]:
    return [(obj.pk, label(obj)) for obj in objects]


def _pick(title: str, choices, nullable: bool = True, description: str = "", default=None) -> dict:
    pick = {"enum": [v for v, _ in choices], "x-choices": list(choices), "title": title, "x-nullable": nullable,
            "description": description}
    if default is not None:
        pick["default"] = default
    return pick


def _secret_schema(names) -> dict:
    return {"type": "object", "properties": {name: {"type": "string"} for name in names}}


def _sharing(user) -> Section:
    """Teams (Django groups) to share with: those the user is in (any, for a superuser)."""
    groups = Group.objects.order_by("name") if user.is_superuser else user.groups.order_by("name")
    teams = _choices(groups)
    return Section("Sharing", {"type": "object", "properties": {"teams": {
        "type": "array", "items": {"enum": [pk for pk, _ in teams]}, "x-choices": teams, "x-widget": "checkboxes",
        "title": "Teams", "description": "Members may read and use it; only the owner changes it."}}}, "sharing.")


def _teams_of(instance) -> dict:
    return {"teams": [team.pk for team in instance.teams.all()]}


@dataclass
class Section:
    """One group of inputs: its schema, where its values come from and which are secret."""

    title: str
    schema: dict
    prefix: str
    secrets: tuple = ()


class Resource:
    """A kind of object the pages manage (format, connection, listener, flow)."""

    model = None
    serializer = None
    registry = None
    plural = ""
    singular = ""
    # Serializer fields drawn in a section of their own (by prefix), whose values are top-level
    # fields of the API JSON: their errors go back to that section.
    flat_sections: dict[str, tuple[str, ...]] = {"sharing.": ("teams",)}

    def placement(self) -> dict[str, str]:
        """{API field: section prefix} for the fields of `flat_sections`."""
        return {name: prefix for prefix, names in self.flat_sections.items() for name in names}

    def merge_flat(self, read: dict, data: dict) -> dict:
        """Lift the values of the `flat_sections` read from a page into the API JSON."""
        for prefix in self.flat_sections:
            data.update(read.get(prefix) or {})
        return data

    def queryset(self, user):
        return visible_to(user, self.model.objects.all())

    def sections(self, user, instance, kind: str, data: dict | None = None) -> list[Section]:
        raise NotImplementedError

    def values(self, instance) -> dict:
        """The stored object as {section prefix: values}, for an edit page."""
        raise NotImplementedError

    def payload(self, read: dict, kind: str) -> dict:
        """The API JSON from the sections' posted values ({prefix: values})."""
        raise NotImplementedError

    def kind_of(self, instance, requested: str) -> str:
        if instance is not None:
            return getattr(instance, "kind", "")
        return requested


class FormatResource(Resource):
    model, serializer, registry, plural, singular = Format, FormatSerializer, codecs, "formats", "format"

    def sections(self, user, instance, kind, data=None):
        return [
            Section("Format", {"type": "object", "required": ["name"], "properties": {
                "name": NAME,
                "sample": {**TEXTAREA, "title": "Sample payload",
                           "description": "The mapping editor lists the fields found in it."},
                "schema": {**TEXTAREA, "title": "Schema (JSON Schema, or XSD for XML)",
                           "description": "Checked at the door when a listener uses this format."},
            }}, ""),
            Section(f"{codecs.get(kind).label} options", codecs.get(kind).options_schema, "options."),
            _sharing(user),
        ]

    def values(self, instance):
        return {"": {"name": instance.name, "sample": instance.sample, "schema": instance.schema},
                "options.": instance.options or {}, "sharing.": _teams_of(instance)}

    def payload(self, read, kind):
        return self.merge_flat(read, {**read[""], "kind": kind, "options": read["options."]})


class ConnectionResource(Resource):
    model, serializer, registry, plural, singular = Connection, ConnectionSerializer, transports, "connections", "connection"

    def sections(self, user, instance, kind, data=None):
        transport = transports.get(kind)
        sections = [
            Section("Connection", {"type": "object", "required": ["name"], "properties": {"name": NAME}}, ""),
            Section(f"{transport.label} options", transport.options_schema, "options."),
        ]
        if transport.secret_options:
            sections.append(Section("Secrets (write-only)", _secret_schema(transport.secret_options), "secrets.",
                                    tuple(transport.secret_options)))
        return [*sections, _sharing(user)]

    def values(self, instance):
        return {"": {"name": instance.name}, "options.": instance.options or {}, "secrets.": {},
                "sharing.": _teams_of(instance)}

    def payload(self, read, kind):
        data = self.merge_flat(read, {**read[""], "kind": kind, "options": read["options."]})
        if read.get("secrets."):
            data["secrets"] = read["secrets."]
        return data


class ListenerResource(Resource):
    model, serializer, plural, singular = Listener, ListenerSerializer, "listeners", "listener"
    flat_sections = {"access.": ("ip_allowlist", "cors_origins"),
                     "limits.": ("rate_limit", "max_concurrent", "dedupe_window_seconds", "retention_days"),
                     "sharing.": ("teams",)}

    def queryset(self, user):
        return visible_to(user, Listener.objects.select_related("flow", "format"))

    def sections(self, user, instance, kind, data=None):
        formats = _choices(visible_to(user, Format.objects.all()))
        return [
            Section("Listener", {"type": "object", "required": ["name", "path", "mode", "auth"], "properties": {
                "name": NAME,
                "path": {"type": "string", "title": "Path", "description": "The URL is /listen/<path>."},
                "mode": _pick("Mode", Listener.Mode.choices, nullable=False, default=Listener.Mode.ASYNC),
                "methods": {"type": "array", "items": {"enum": METHODS}, "title": "HTTP methods", "default": ["POST"]},
                "auth": _pick("Authentication", Listener.Auth.choices, nullable=False, default=Listener.Auth.TOKEN),
                "api_key_header": {"type": "string", "title": "API key header", "default": "X-API-Key"},
                "allowed_users": {"type": "array", "items": {"type": "string"}, "title": "Other users allowed to push"},
                "format": _pick("Check payloads with format", formats,
                                description="Payloads that do not read in this format are refused with 422."),
                "content_types": {"type": "array", "items": {"type": "string"}, "title": "Accepted content types",
                                  "description": "Empty: any."},
                "max_body_bytes": {"type": "integer", "title": "Largest body (bytes)", "default": 10 * 1024 * 1024},
                "timeout_seconds": {"type": "number", "title": "Sync timeout (seconds)", "default": 30},
                "expected_gap_minutes": {"type": "integer", "title": "Warn when silent longer than (minutes)",
                                         "description": "0: never warn.", "default": 0},
                "enabled": {"type": "boolean", "title": "Enabled", "default": True},
            }}, ""),
            Section("HMAC signature", {"type": "object", "properties": {
                "scheme": {"enum": list(SCHEMES), "title": "Signature scheme", "default": "standard"},
                "tolerance": {"type": "integer", "title": "Timestamp tolerance (seconds)", "default": 300},
            }}, "signature."),
            Section("Secrets (write-only)", {"type": "object", "properties": {
                "api_key": {"type": "string", "title": "API key"},
                "signing_keys": {"type": "array", "items": {"type": "string"}, "title": "HMAC signing keys"},
            }}, "secrets.", ("api_key", "signing_keys")),
            Section("Who may push", {"type": "object", "properties": {
                "ip_allowlist": {"type": "array", "items": {"type": "string"}, "title": "IP allow-list",
                                 "description": "Addresses or CIDR ranges (10.0.0.0/8) allowed to push; empty: any."},
                "cors_origins": {"type": "array", "items": {"type": "string"}, "title": "CORS origins",
                                 "description": "Web origins (https://app.example.com) whose pages may push from a "
                                                "browser; * for any; empty: none."},
            }}, "access."),
            Section("Limits and keeping", {"type": "object", "properties": {
                "rate_limit": {"type": "number", "title": "Rate limit (requests per second)", "default": 0,
                               "description": "Per web process; 0: no limit."},
                "max_concurrent": {"type": "integer", "title": "Requests at once", "default": 0,
                                   "description": "Per web process; 0: no cap."},
                "dedupe_window_seconds": {"type": "integer", "title": "Duplicate window (seconds)", "default": 0,
                                          "description": "The same body again within this many seconds (without an "
                                                         "Idempotency-Key) gets the first receipt; 0: off."},
                "retention_days": {"type": "integer", "title": "Keep finished messages (days)", "default": 30,
                                   "description": "0: kept forever."},
            }}, "limits."),
            _sharing(user),
        ]

    def values(self, instance):
        own = {name: getattr(instance, name) for name in (
            "name", "path", "mode", "methods", "auth", "api_key_header", "content_types", "max_body_bytes",
            "timeout_seconds", "expected_gap_minutes", "enabled")}
        own["format"] = instance.format_id
        own["allowed_users"] = [u.get_username() for u in instance.allowed_users.all()]
        return {"": own, "signature.": instance.signature or {}, "secrets.": {}, "sharing.": _teams_of(instance),
                "access.": {"ip_allowlist": instance.ip_allowlist, "cors_origins": instance.cors_origins},
                "limits.": {name: getattr(instance, name) for name in self.flat_sections["limits."]}}

    def payload(self, read, kind):
        data = self.merge_flat(read, dict(read[""]))
        if data.get("auth") == Listener.Auth.HMAC:
            data["signature"] = read["signature."]
        if read.get("secrets."):
            data["secrets"] = read["secrets."]
        return data


class FlowResource(Resource):
    model, serializer, plural, singular = Flow, FlowSerializer, "flows", "flow"
    flat_sections = {"running.": ("concurrency", "ordering", "lookups"), "sharing.": ("teams",)}

    def queryset(self, user):
        return visible_to(user, Flow.objects.select_related(
            "listener", "source_format", "source_connection", "destination_format", "destination_connection"))

    def connection_of(self, user, instance, data: dict | None, field: str = "destination.connection") -> Connection | None:
        """The connection the form names (posted), else the stored one: its kind decides the options shown."""
        wanted = (data or {}).get(field) if data is not None else None
        if wanted is None and instance is not None:
            return getattr(instance, field.replace(".", "_"))
        if wanted:
            return visible_to(user, Connection.objects.all()).filter(pk=wanted).first() if str(wanted).isdigit() else None
        return None

    def sections(self, user, instance, kind, data=None):
        listeners = visible_to(user, Listener.objects.select_related("flow"))
        own_listener = getattr(instance, "listener_id", None)
        free = [li for li in listeners if not hasattr(li, "flow") or li.pk == own_listener]
        formats = _choices(visible_to(user, Format.objects.all()))
        connections = _choices(visible_to(user, Connection.objects.all()))
        connection = self.connection_of(user, instance, data)
        destination_options = connection.transport.destination_options_schema if connection else {"type": "object"}
        source = self.connection_of(user, instance, data, "source_connection")
        source_options = source.transport.source_options_schema if source else {"type": "object"}
        return [
            Section("Source", {"type": "object", "required": ["name", "source_format", "trigger", "on_error"], "properties": {
                "name": NAME,
                "listener": _pick("Listener", _choices(free, lambda li: f"{li.name} (/listen/{li.path})"),
                                  description="Where payloads arrive. One flow per listener."),
                "source_connection": _pick("Or a timed source connection", connections,
                                           description="Read by a cron or interval trigger."),
                "source_format": _pick("Source format", formats, nullable=False),
                "trigger": _pick("Trigger", Flow.Trigger.choices, nullable=False, default=Flow.Trigger.EVENT),
                "schedule": {"type": "string", "title": "Schedule (cron, or seconds for an interval)"},
                "on_error": _pick("A bad record", Flow.OnError.choices, nullable=False, default=Flow.OnError.REJECT_RECORD),
            }}, ""),
            Section("Timed source options" + (f" ({source.transport.label})" if source else ""), source_options,
                    "source_options."),
            Section("Destination", {"type": "object", "properties": {
                "connection": _pick("Connection", connections,
                                    description="None: the output is the answer to a sync caller."),
                "format": _pick("Destination format", formats),
            }}, "destination."),
            Section("Destination options" + (f" ({connection.transport.label})" if connection else ""),
                    destination_options, "destination.options."),
            Section("Running", {"type": "object", "properties": {
                "concurrency": {"type": "integer", "title": "Most runs at once", "default": 0,
                                "description": "0: no cap."},
                "ordering": _pick("Order of runs", Flow._meta.get_field("ordering").choices, nullable=False,
                                  default="none"),
                "lookups": {"type": "object", "title": "Lookup tables",
                            "description": 'Tables for $lookup(table, key): {"country": {"FR": "France"}}, or a '
                                           'database table {"t": {"connection": id, "table", "key", "value"}}.'},
            }}, "running."),
            Section("Retry policy", RETRY_SCHEMA, "retry."),
            _sharing(user),
        ]

    def values(self, instance):
        own = {"name": instance.name, "listener": instance.listener_id, "source_connection": instance.source_connection_id,
               "source_format": instance.source_format_id, "trigger": instance.trigger, "schedule": instance.schedule,
               "on_error": instance.on_error}
        return {"": own, "source_options.": instance.source_options or {}, "sharing.": _teams_of(instance),
                "running.": {"concurrency": instance.concurrency, "ordering": instance.ordering,
                             "lookups": instance.lookups or {}},
                "retry.": instance.retry or {},
                "destination.": {"connection": instance.destination_connection_id,
                                          "format": instance.destination_format_id},
                "destination.options.": instance.destination_options or {}}

    def payload(self, read, kind):
        data = self.merge_flat(read, dict(read[""]))
        if "retry." in read:
            data["retry"] = read["retry."]
        if "source_options." in read:
            data["source_options"] = read["source_options."]
        if "destination." in read:
            data["destination"] = {**read["destination."], "options": read.get("destination.options.", {})}
        return data


RESOURCES: dict[str, Resource] = {r.plural: r for r in (FormatResource(), ConnectionResource(), ListenerResource(),
                                                         FlowResource())}


def may_change(user, instance) -> bool:
    """Only the owner (or a superuser) changes an object; team members read and use it."""
    return user.is_superuser or instance.owner_id == user.pk


def build_form(resource: Resource, user, instance, kind: str, values: dict | None, errors: dict | None,
               sections: list[Section] | None = None, post=None) -> list[dict]:
    """The sections of a page with their fields, values and errors (keyed by prefix)."""
    values, errors = values or {}, errors or {}
    sections = sections or resource.sections(user, instance, kind, post)
    return [{"title": s.title, "prefix": s.prefix,
             "fields": schema_fields(s.schema, values.get(s.prefix), errors.get(s.prefix), s.prefix, s.secrets)}
            for s in sections]


def read_sections(sections: list[Section], post) -> tuple[dict, dict]:
    read, errors = {}, {}
    for section in sections:
        read[section.prefix], errors[section.prefix] = read_form(section.schema, post, section.prefix, section.secrets)
    return read, errors


def errors_for_sections(api_errors: dict, placement: dict[str, str] | None = None) -> dict:
    """The serializer's errors put under the section and field they name (`placement`: the
    section prefix of top-level fields drawn in a section of their own)."""
    placed = {"": {}}
    placement = placement or {}
    for name, value in api_errors.items():
        if name in placement:
            placed.setdefault(placement[name], {}).setdefault(name, []).extend(messages_of(value))
        elif name in ("options", "secrets", "signature", "source_options", "retry"):
            for field, texts in errors_by_field(value).items():
                placed.setdefault(f"{name}.", {}).setdefault(field, []).extend(texts)
        elif name == "destination" and isinstance(value, dict):
            for inner, texts in value.items():
                if inner == "options":
                    for field, more in errors_by_field(texts).items():
                        placed.setdefault("destination.options.", {}).setdefault(field, []).extend(more)
                else:
                    placed.setdefault("destination.", {}).setdefault(inner, []).extend(messages_of(texts))
        else:
            key = "" if name == "non_field_errors" else name
            placed[""].setdefault(key, []).extend(messages_of(value))
    return placed


def save(resource: Resource, request, data: dict, instance=None):
    """Validate with the API's serializer and save with its audit entry, as the API does.
    Returns (object, errors by section)."""
    context = {"request": request}
    serializer = resource.serializer(instance, data=data, partial=instance is not None, context=context)
    if not serializer.is_valid():
        return None, errors_for_sections(serializer.errors, resource.placement())
    before = resource.serializer(instance, context=context).data if instance is not None else None
    secrets = data.get("secrets") if isinstance(data.get("secrets"), dict) else {}
    try:
        with transaction.atomic():
            saved = serializer.save() if instance is not None else serializer.save(owner=request.user)
            after = resource.serializer(saved, context=context).data
            record_change(request.user, "update" if instance is not None else "create", saved, before, after, list(secrets))
    except IntegrityError:
        return None, {"": {"": ["this conflicts with an existing object (a name, path or link must be unique)"]}}
    return saved, {}


def delete(resource: Resource, request, instance) -> str:
    """Delete with its audit entry; the reason it cannot be deleted, or ""."""
    before = resource.serializer(instance, context={"request": request}).data
    pk = instance.pk
    try:
        with transaction.atomic():
            instance.delete()
            instance.pk = pk
            record_change(request.user, "delete", instance, before, None)
    except ProtectedError as exc:
        users = sorted({str(obj) for obj in exc.protected_objects})[:5]
        return f"still in use by: {', '.join(users)}; change or delete those first"
    return ""
