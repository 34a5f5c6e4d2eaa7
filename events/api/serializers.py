"""Serializers of subscriptions (secret shown once), deliveries with their attempts, queues and outputs."""
from __future__ import annotations

import re

from rest_framework import serializers

from config.api import OwnedPrimaryKeyField, teams_field
from connections.outbound import OutboundRefused, check_url
from events.models import EVENT_TYPES, Delivery, DeliveryAttempt, Output, Queue, Subscription
from flows.models import Flow
from listeners.models import Listener

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class SubscriptionSerializer(serializers.ModelSerializer):
    teams = teams_field()
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), min_length=1, max_length=len(EVENT_TYPES))
    flows = OwnedPrimaryKeyField(queryset=Flow.objects.all(), many=True, required=False,
                                 help_text="Flows whose events are sent; empty: every flow you may see.")
    listeners = OwnedPrimaryKeyField(queryset=Listener.objects.all(), many=True, required=False,
                                     help_text="Only events of these listeners; empty: any.")
    entity_names = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=100,
                                         help_text="Only events of flows producing these entities; empty: any.")

    class Meta:
        model = Subscription
        fields = ["id", "url", "description", "teams", "events", "flows", "listeners", "entity_names", "enabled", "disabled_reason",
                  "consecutive_failures", "previous_secret_expires_at", "created_at", "updated_at"]
        read_only_fields = ["disabled_reason", "consecutive_failures", "previous_secret_expires_at", "created_at", "updated_at"]

    def validate_url(self, value):
        try:
            check_url(value)
        except OutboundRefused as exc:
            raise serializers.ValidationError(exc.reason) from None
        return value

    def validate_events(self, value):
        return sorted(set(value), key=EVENT_TYPES.index)

    def validate(self, attrs):
        # Ignoring it would let a caller believe the receiver's secret was set.
        given = self.initial_data if isinstance(self.initial_data, dict) else {}
        for name in ("secret", "secrets"):
            if name in given:
                raise serializers.ValidationError({name: [
                    "the signing secret is made by Pushflow and answered once, on create; to change it, "
                    "POST /api/v1/subscriptions/{id}/rotate-secret"]})
        return super().validate(attrs)


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "manual", "started_at", "status_code", "duration_ms", "succeeded", "error"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "msg_id", "event", "status", "attempts", "next_attempt_at", "last_status_code", "last_error",
                  "created_at", "finished_at", "payload", "attempt_log"]
        read_only_fields = fields


class QueueSerializer(serializers.ModelSerializer):
    teams = teams_field()
    flows = OwnedPrimaryKeyField(queryset=Flow.objects.all(), many=True, required=False,
                                 help_text="Flows whose outputs join this queue.")
    lease_seconds = serializers.IntegerField(min_value=1, max_value=7 * 24 * 3600, default=300)
    depth = serializers.SerializerMethodField(help_text="Items waiting, and items out on a lease.")

    class Meta:
        model = Queue
        fields = ["id", "name", "teams", "flows", "lease_seconds", "depth", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_name(self, value):
        if not QUEUE_NAME.match(value):
            raise serializers.ValidationError("use letters, digits, '.', '_' and '-' (it is part of the queue's URL)")
        return value

    def get_depth(self, obj) -> dict:
        from events.services import queue_depths

        return queue_depths([obj])[obj.pk]


class OutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Output
        fields = ["id", "flow", "run", "message", "entity_name", "content_type", "size", "created_at"]
        read_only_fields = fields
