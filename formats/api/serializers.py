from rest_framework import serializers

from config.api import KindOptionsSerializerMixin, teams_field
from formats.codecs import codecs
from formats.models import Format
from formats.schemas import SchemaError, compile_schema


class FormatSerializer(KindOptionsSerializerMixin, serializers.ModelSerializer):
    teams = teams_field()
    registry = codecs
    kind = serializers.CharField(max_length=20)

    class Meta:
        model = Format
        fields = ["id", "name", "teams", "kind", "options", "schema", "sample", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs):
        attrs = super().validate(attrs)  # the kind is known and valid from here
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        text = attrs.get("schema", getattr(self.instance, "schema", ""))
        try:
            compile_schema(codecs.get(kind).schema_language, text)
        except SchemaError as exc:
            raise serializers.ValidationError({"schema": [exc.reason]}) from None
        return attrs
