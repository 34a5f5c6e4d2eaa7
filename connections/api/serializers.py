from rest_framework import serializers

from config.api import KindOptionsSerializerMixin, teams_field
from connections.models import Connection
from connections.transports import transports


class ConnectionSerializer(KindOptionsSerializerMixin, serializers.ModelSerializer):
    teams = teams_field()
    registry = transports
    kind = serializers.CharField(max_length=20)
    secrets = serializers.DictField(child=serializers.CharField(allow_blank=True), write_only=True, required=False)
    secret_names = serializers.ListField(child=serializers.CharField(), read_only=True,
                                         help_text="Names of the stored secrets; their values are never returned.")

    class Meta:
        model = Connection
        fields = ["id", "name", "teams", "kind", "options", "secrets", "secret_names", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def _apply_secrets(self, instance, secrets):
        if secrets is not None:
            merged = {**instance.secrets, **secrets} if instance.pk else secrets
            instance.secrets = merged

    def create(self, validated_data):
        secrets = validated_data.pop("secrets", None)
        teams = validated_data.pop("teams", None)
        instance = Connection(**validated_data)
        self._apply_secrets(instance, secrets)
        instance.save()
        if teams is not None:
            instance.teams.set(teams)
        return instance

    def update(self, instance, validated_data):
        secrets = validated_data.pop("secrets", None)
        teams = validated_data.pop("teams", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        self._apply_secrets(instance, secrets)
        instance.save()
        if teams is not None:
            instance.teams.set(teams)
        return instance
