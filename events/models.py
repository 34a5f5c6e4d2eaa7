"""Subscription and its Delivery/DeliveryAttempt log; Output (a kept flow output file); Queue and QueueItem."""
from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from connections.crypto import decrypt_secrets, encrypt_secrets

EVENT_TYPES = ("run.succeeded", "run.failed", "message.rejected", "output.ready")


class Subscription(models.Model):
    """A URL that is sent the chosen events of chosen flows, signed per Standard Webhooks."""

    # Members of its teams read it and its delivery log; only the owner (or an administrator) changes it.
    TEAM_FIELDS = ("teams",)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions")
    teams = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    url = models.URLField(max_length=1000)
    description = models.CharField(max_length=200, blank=True, default="")
    events = models.JSONField(default=list)
    # Filters; each empty list means "any". Only flows the owner may see ever match.
    flows = models.ManyToManyField("flows.Flow", blank=True, related_name="+")
    listeners = models.ManyToManyField("listeners.Listener", blank=True, related_name="+")
    entity_names = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, default="")
    # Deliveries in a row that failed every retry; reset by any success.
    consecutive_failures = models.PositiveIntegerField(default=0)
    # The current secret and, after a rotation, the one before it (both encrypted); see signing_secrets.
    secret_encrypted = models.TextField(blank=True, default="", editable=False)
    # Until then deliveries are signed with the previous secret as well as the current one.
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"subscription {self.pk} to {self.url}"

    @property
    def secret(self) -> str:
        return decrypt_secrets(self.secret_encrypted).get("secret", "")

    @secret.setter
    def secret(self, value: str) -> None:
        """A new secret with no grace period for the old one (rotation is events.services.rotate_secret)."""
        self.secret_encrypted = encrypt_secrets({"secret": value})
        self.previous_secret_expires_at = None

    def signing_secrets(self, now=None) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one during its grace period."""
        stored = decrypt_secrets(self.secret_encrypted)
        secrets = [stored.get("secret", "")]
        now = now or timezone.now()
        if stored.get("previous") and self.previous_secret_expires_at and now < self.previous_secret_expires_at:
            secrets.append(stored["previous"])
        return secrets


class Delivery(models.Model):
    """One event for one subscription: its payload, where it stands, and its attempts."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    # The Standard Webhooks `webhook-id`: the same on every attempt, so a receiver can drop a repeat.
    msg_id = models.CharField(max_length=60, unique=True)
    event = models.CharField(max_length=30)
    payload = models.JSONField(default=dict)
    # The kept output an `output.ready` event points to (a fresh download URL is signed per attempt).
    output = models.ForeignKey("Output", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["subscription", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.msg_id} {self.status}"


class DeliveryAttempt(models.Model):
    """One HTTP request of a delivery: when, what the subscriber answered and how fast."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    manual = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    succeeded = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["number", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"


class Output(models.Model):
    """A flow's output bytes kept as a file under the var folder, downloadable through a signed URL."""

    TEAM_FIELDS = ("flow__teams",)  # members of a team the flow is shared with may read its outputs

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey("flows.FlowRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.ForeignKey("listeners.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    entity_name = models.CharField(max_length=200, blank=True, default="")
    content_type = models.CharField(max_length=200, blank=True, default="")
    size = models.PositiveBigIntegerField(default=0)
    # Relative to PUSHFLOW_OUTPUT_DIR.
    path = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"output {self.pk} of flow {self.flow_id}"

    @property
    def file(self) -> Path:
        return Path(settings.PUSHFLOW_OUTPUT_DIR) / self.path


class Queue(models.Model):
    """A pull queue: the outputs of its flows, handed to pollers one at a time under a lease."""

    # Members of its teams poll it (next, ack); only the owner (or an administrator) changes it.
    TEAM_FIELDS = ("teams",)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="event_queues")
    teams = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    name = models.CharField(max_length=100, unique=True)
    flows = models.ManyToManyField("flows.Flow", blank=True, related_name="+")
    lease_seconds = models.PositiveIntegerField(default=300)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class QueueItem(models.Model):
    """One output waiting in a queue. Leased when `lease_expires_at` is in the future; acknowledged: deleted."""

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="items")
    output = models.ForeignKey(Output, on_delete=models.CASCADE, related_name="queue_items")
    created_at = models.DateTimeField(default=timezone.now)
    # A new id per lease: an acknowledgement names the lease, so a poller whose lease ran out
    # and was handed to another cannot remove the item from under it.
    lease_id = models.UUIDField(null=True, blank=True, unique=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    leases = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["queue", "lease_expires_at", "id"])]

    def __str__(self) -> str:
        return f"item {self.pk} of {self.queue_id}"

    @staticmethod
    def new_lease_id() -> uuid.UUID:
        return uuid.uuid4()
