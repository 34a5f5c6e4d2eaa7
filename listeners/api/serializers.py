import ipaddress
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework import serializers

from config.api import OwnedPrimaryKeyField, teams_field
from formats.models import Format
from listeners.models import Listener, Message, valid_path
from listeners.signatures import SCHEMES

METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"]


ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:]+\](:[0-9]{1,5})?$")


class ListenerSerializer(serializers.ModelSerializer):
    teams = teams_field()
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
        fields = ["id", "name", "teams", "path", "url", "mode", "methods", "auth", "allowed_users", "api_key_header",
                  "signature", "secrets", "format", "max_body_bytes", "content_types", "ip_allowlist", "cors_origins",
                  "rate_limit", "max_concurrent", "timeout_seconds", "dedupe_window_seconds", "retention_days",
                  "expected_gap_minutes", "enabled",
                  "flow", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_url(self, obj) -> str:
        base = settings.PUSHFLOW_PUBLIC_URL.rstrip("/")
        request = self.context.get("request")
        if not base and request is not None:
            base = request.build_absolute_uri("/").rstrip("/")
        return f"{base}/listen/{obj.path}"

    def validate_path(self, value):
        value = value.strip().strip("/")
        if not valid_path(value):
            raise serializers.ValidationError(
                "use letters, digits, '.', '_', '~', '-' and single '/' between parts (no '..', no leading '/')"
            )
        return value

    def validate_methods(self, value):
        return sorted({m.upper() for m in value}) or ["POST"]

    def validate_rate_limit(self, value):
        if value < 0:
            raise serializers.ValidationError("requests per second, 0 for no limit")
        return value

    def validate_max_body_bytes(self, value):
        if value < 1:
            raise serializers.ValidationError("must be at least 1 byte")
        return value

    def validate_content_types(self, value):
        if not isinstance(value, list) or not all(isinstance(v, str) and "/" in v for v in value):
            raise serializers.ValidationError("a list of media types such as 'application/json'")
        return [v.strip().lower() for v in value]

    def validate_signature(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("an object like {\"scheme\": \"standard\", \"tolerance\": 300}")
        scheme = value.get("scheme", "standard")
        if scheme not in SCHEMES:
            raise serializers.ValidationError(f"scheme must be one of {', '.join(SCHEMES)}")
        tolerance = value.get("tolerance", 300)
        if not isinstance(tolerance, int) or isinstance(tolerance, bool) or not 1 <= tolerance <= 86400:
            raise serializers.ValidationError("tolerance is a number of seconds between 1 and 86400")
        return {"scheme": scheme, "tolerance": tolerance}

    def validate_secrets(self, value):
        keys = value.get("signing_keys")
        if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys)):
            raise serializers.ValidationError({"signing_keys": "a list of non-empty strings"})
        api_keys = value.get("api_keys")
        if api_keys is not None and (not isinstance(api_keys, list) or not all(isinstance(k, str) and k for k in api_keys)):
            raise serializers.ValidationError({"api_keys": "a list of non-empty strings"})
        return value

    def validate_cors_origins(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError("a list of origins, e.g. ['https://app.example.com'], or ['*']")
        origins = []
        for origin in value:
            text = str(origin).strip().rstrip("/").lower()
            if text != "*" and not ORIGIN.match(text):
                raise serializers.ValidationError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
            origins.append(text)
        return origins

    def validate_ip_allowlist(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError("a list of addresses or CIDR ranges, e.g. ['10.0.0.0/8', '2001:db8::1']")
        for block in value:
            try:
                ipaddress.ip_network(str(block), strict=False)
            except ValueError:
                raise serializers.ValidationError(f"{block!r} is not an address or CIDR range") from None
        return [str(block) for block in value]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "methods" not in attrs and self.instance is None:
            attrs["methods"] = ["POST"]
        auth = attrs.get("auth", getattr(self.instance, "auth", Listener.Auth.TOKEN))
        secrets = attrs.get("secrets")
        stored = self.instance.secrets if self.instance is not None else {}
        merged = {**stored, **(secrets or {})}
        if auth == Listener.Auth.HMAC and not merged.get("signing_keys"):
            raise serializers.ValidationError({"secrets": ["an hmac listener needs secrets.signing_keys (one or more)"]})
        if auth == Listener.Auth.API_KEY and not (merged.get("api_keys") or merged.get("api_key")):
            raise serializers.ValidationError({"secrets": ["an api_key listener needs secrets.api_key or secrets.api_keys"]})
        return attrs

    def _save_with_secrets(self, instance, validated_data):
        secrets = validated_data.pop("secrets", None)
        users = validated_data.pop("allowed_users", None)
        teams = validated_data.pop("teams", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        if secrets is not None:
            instance.secrets = {**instance.secrets, **secrets} if instance.pk else secrets
        instance.save()
        if users is not None:
            instance.allowed_users.set(users)
        if teams is not None:
            instance.teams.set(teams)
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
