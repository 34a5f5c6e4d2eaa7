from rest_framework import serializers

from config.api import OwnedPrimaryKeyField, teams_field
from connections.models import Connection
from flows import schedules
from flows.mapping import MappingError, compile_mapping
from flows.models import Flow, FlowRun
from formats.models import Format
from lib.registry import options_errors
from listeners.models import Listener

RETRY_SCHEMA = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "minimum": 1, "maximum": 100, "title": "Tries in all"},
        "backoff": {"type": "number", "minimum": 0, "maximum": 3600, "title": "Seconds before the 2nd try (doubled after)"},
        "max_delay": {"type": "number", "minimum": 0, "maximum": 86400, "title": "Longest wait between tries"},
    },
    "additionalProperties": False,
}


class DestinationSerializer(serializers.Serializer):
    connection = OwnedPrimaryKeyField(queryset=Connection.objects.all(), allow_null=True, required=False)
    format = OwnedPrimaryKeyField(queryset=Format.objects.all(), allow_null=True, required=False)
    options = serializers.DictField(required=False, default=dict)

    def validate(self, attrs):
        connection = attrs.get("connection")
        options = attrs.get("options") or {}
        if connection is not None:
            problems = options_errors(connection.transport.destination_options_schema, options)
            if problems:
                raise serializers.ValidationError({"options": problems})
        return attrs


class FlowSerializer(serializers.ModelSerializer):
    teams = teams_field()
    listener = OwnedPrimaryKeyField(queryset=Listener.objects.all(), allow_null=True, required=False)
    source_format = OwnedPrimaryKeyField(queryset=Format.objects.all())
    source_connection = OwnedPrimaryKeyField(queryset=Connection.objects.all(), allow_null=True, required=False)
    destination = DestinationSerializer(required=False)

    class Meta:
        model = Flow
        fields = ["id", "name", "teams", "listener", "source_connection", "source_format", "source_options", "mapping",
                  "lookups", "on_error", "destination", "trigger", "schedule", "concurrency", "ordering", "retry", "enabled", "version",
                  "created_at", "updated_at"]
        read_only_fields = ["version", "created_at", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["destination"] = {
            "connection": instance.destination_connection_id,
            "format": instance.destination_format_id,
            "options": instance.destination_options or {},
        }
        return data

    def validate_listener(self, value):
        if value is not None:
            taken = Flow.objects.filter(listener=value).exclude(pk=getattr(self.instance, "pk", None)).first()
            if taken is not None:
                raise serializers.ValidationError(f"listener {value.path!r} already feeds flow {taken.name!r}; one flow per listener")
        return value

    def validate_mapping(self, value):
        try:
            compile_mapping(value)
        except MappingError as exc:
            raise serializers.ValidationError(f"field {exc.field!r}: {exc.reason}") from None
        return value

    def validate_schedule(self, value):
        return "" if value is None else str(value)

    def _check_database_lookups(self, lookups) -> None:
        from config.api import visible_to
        from flows.lookups import check_spec, database_tables

        if not isinstance(lookups, dict):
            return  # compile_mapping names the problem
        for name, spec in database_tables(lookups).items():
            problem = check_spec(name, spec)
            if problem is None:
                user = self.context["request"].user
                if not visible_to(user, Connection.objects.filter(kind="database")).filter(pk=spec["connection"]).exists():
                    problem = f"lookup {name!r}: no database connection {spec['connection']!r} you may use"
            if problem:
                raise serializers.ValidationError({"lookups": [problem]})

    def validate_retry(self, value):
        problems = options_errors(RETRY_SCHEMA, value if value is not None else {})
        if problems:
            raise serializers.ValidationError(problems)
        return value or {}

    def validate_source_options(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("an object of the source connection's read options")
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        trigger = attrs.get("trigger", getattr(self.instance, "trigger", Flow.Trigger.EVENT))
        if "trigger" in attrs or "schedule" in attrs:
            try:
                attrs["schedule"] = schedules.validate(trigger, attrs.get("schedule", getattr(self.instance, "schedule", "")))
            except schedules.ScheduleError as exc:
                raise serializers.ValidationError({"schedule": [str(exc)]}) from None
        source = attrs.get("source_connection", getattr(self.instance, "source_connection", None))
        if source is not None and "source_options" in attrs:
            problems = options_errors(source.transport.source_options_schema, attrs["source_options"])
            if problems:
                raise serializers.ValidationError({"source_options": problems})
        if "lookups" in attrs:
            self._check_database_lookups(attrs["lookups"] or {})
            mapping = attrs.get("mapping", getattr(self.instance, "mapping", None)) or {"fields": [{"target": "x", "value": 1}]}
            try:
                compile_mapping(mapping, attrs["lookups"] or {})
            except MappingError as exc:
                raise serializers.ValidationError({exc.field: [exc.reason]}) from None
        destination = attrs.pop("destination", None)
        if destination is not None:
            attrs["destination_connection"] = destination.get("connection")
            attrs["destination_format"] = destination.get("format")
            attrs["destination_options"] = destination.get("options") or {}
        return attrs


class FlowRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = FlowRun
        fields = ["id", "flow", "message", "trigger", "attempt", "status", "started_at", "finished_at", "records_in",
                  "records_out", "records_rejected", "bytes_read", "log", "error"]
        read_only_fields = fields


class PreviewSerializer(serializers.Serializer):
    """What a preview is asked for: a message or a sample, and optionally an unsaved mapping."""

    message = serializers.UUIDField(required=False, allow_null=True)
    sample = serializers.CharField(required=False, allow_null=True, trim_whitespace=False, max_length=5 * 1024 * 1024)
    mapping = serializers.JSONField(required=False)
    lookups = serializers.JSONField(required=False)
    on_error = serializers.ChoiceField(choices=Flow.OnError.choices, required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=20)

    def validate_message(self, value):
        if value is None:
            return None
        from config.api import visible_to
        from listeners.models import Message

        message = visible_to(self.context["request"].user, Message.objects.all()).filter(pk=value).first()
        if message is None:
            raise serializers.ValidationError("no such message")
        return message

    def validate(self, attrs):
        if attrs.get("message") is not None and attrs.get("sample") is not None:
            raise serializers.ValidationError("give a message or a sample, not both")
        return attrs


class UnsavedPreviewSerializer(PreviewSerializer):
    source_format = OwnedPrimaryKeyField(queryset=Format.objects.all())
    mapping = serializers.JSONField()
