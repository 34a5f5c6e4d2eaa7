from rest_framework import serializers

from config.api import KindOptionsSerializerMixin
from formats.codecs import codecs
from formats.models import Format


class FormatSerializer(KindOptionsSerializerMixin, serializers.ModelSerializer):
    registry = codecs
    kind = serializers.CharField(max_length=20)

    class Meta:
        model = Format
        fields = ["id", "name", "kind", "options", "schema", "sample", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
