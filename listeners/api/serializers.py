import re

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import serializers

from config.api import OwnedPrimaryKeyField
from formats.models import Format
from listeners.models import Listener, Message

_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9][A-Za-z0-9._~-]*)*$")
METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"]


class ListenerSerializer(serializers.ModelSerializer):
    format = OwnedPrimaryKeyField(queryset=Format.objects.all(), allow_null=True, required=False)
    methods = serializers.ListField(child=serializers.ChoiceField(choices=METHODS), required=False)
    allowed_users = serializers.SlugRelatedField(
        slug_field="username", many=True, required=False, queryset=get_user_model().objects.all()
    )
    secrets = serializers.DictField(write_only=True, required=False)
    url = serializers.SerializerMethodField()
    flow = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Listener
        fields = ["id", "name", "path", "url", "mode", "methods", "auth", "allowed_users", "api_key_header",
                  "signature", "secrets", "format", "max_body_bytes", "content_types", "timeout_seconds",
                  "enabled", "flow", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_url(self, obj) -> str:
        base = settings.PUSHFLOW_PUBLIC_URL.rstrip("/")
        request = self.context.get("request")
        if not base and request is not None:
            base = request.build_absolute_uri("/").rstrip("/")
        return f"{base}/listen/{obj.path}"

    def validate_path(self, value):
        value = value.strip().strip("/")
        if not _PATH.match(value) or ".." in value.split("/"):
            raise serializers.ValidationError(
                "use letters, digits, '.', '_', '~', '-' and single '/' between parts (no '..', no leading '/')"
            )
        return value

    def validate_methods(self, value):
        return sorted({m.upper() for m in value}) or ["POST"]

    def validate_max_body_bytes(self, value):
        if value < 1:
            raise serializers.ValidationError("must be at least 1 byte")
        return value

    def validate_content_types(self, value):
        if not isinstance(value, list) or not all(isinstance(v, str) and "/" in v for v in value):
            raise serializers.ValidationError("a list of media types such as 'application/json'")
        return [v.strip().lower() for v in value]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "methods" not in attrs and self.instance is None:
            attrs["methods"] = ["POST"]
        return attrs

    def _save_with_secrets(self, instance, validated_data):
        secrets = validated_data.pop("secrets", None)
        users = validated_data.pop("allowed_users", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        if secrets is not None:
            instance.secrets = secrets
        instance.save()
        if users is not None:
            instance.allowed_users.set(users)
        return instance

    def create(self, validated_data):
        return self._save_with_secrets(Listener(), validated_data)

    def update(self, instance, validated_data):
        return self._save_with_secrets(instance, validated_data)


class RunSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    attempt = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    records_in = serializers.IntegerField()
    records_out = serializers.IntegerField()
    records_rejected = serializers.IntegerField()
    error = serializers.CharField()
    log = serializers.ListField(child=serializers.CharField())


class MessageSerializer(serializers.ModelSerializer):
    runs = RunSummarySerializer(many=True, read_only=True)
    body_url = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ["id", "listener", "flow", "status", "received_at", "method", "path", "query", "content_type",
                  "charset", "size", "sha256", "headers", "remote_addr", "idempotency_key", "attempts",
                  "finished_at", "response_status", "error", "resubmitted_from", "body_url", "runs"]
        read_only_fields = fields

    def get_body_url(self, obj) -> str:
        return f"/api/v1/messages/{obj.pk}/body"
