from rest_framework import serializers

from config.api import OwnedPrimaryKeyField
from connections.models import Connection
from flows.mapping import MappingError, compile_mapping
from flows.models import Flow, FlowRun
from formats.models import Format
from lib.registry import options_errors
from listeners.models import Listener


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
    listener = OwnedPrimaryKeyField(queryset=Listener.objects.all(), allow_null=True, required=False)
    source_format = OwnedPrimaryKeyField(queryset=Format.objects.all())
    source_connection = OwnedPrimaryKeyField(queryset=Connection.objects.all(), allow_null=True, required=False)
    destination = DestinationSerializer(required=False)

    class Meta:
        model = Flow
        fields = ["id", "name", "listener", "source_connection", "source_format", "mapping", "lookups", "on_error",
                  "destination", "trigger", "schedule", "concurrency", "ordering", "retry", "enabled", "version",
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

    def validate(self, attrs):
        attrs = super().validate(attrs)
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
