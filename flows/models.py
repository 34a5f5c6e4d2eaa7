"""Flow (what to do with a listener's payloads or a timed source) and FlowRun (one run of it)."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Flow(models.Model):
    """Read with a source format, map each record, write with a destination format and connection."""

    class Trigger(models.TextChoices):
        EVENT = "event", "When a payload arrives"
        CRON = "cron", "Cron schedule"
        INTERVAL = "interval", "Every N seconds"
        MANUAL = "manual", "By hand"

    class OnError(models.TextChoices):
        REJECT_RECORD = "reject_record", "Leave the bad record out"
        REJECT_PAYLOAD = "reject_payload", "Reject the whole payload"
        HALT = "halt", "Halt the run"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flows")
    # Teams (Django groups) it is shared with: members may read and use it; the owner changes it.
    teams = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    name = models.CharField(max_length=200)
    # One listener per flow, enforced by the database's unique constraint.
    listener = models.OneToOneField(
        "listeners.Listener", null=True, blank=True, on_delete=models.SET_NULL, related_name="flow"
    )
    source_connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_format = models.ForeignKey("formats.Format", on_delete=models.PROTECT, related_name="+")
    # How a timed flow reads its source connection (folder `pattern`, ...).
    source_options = models.JSONField(default=dict, blank=True)
    # What the source connection remembers between timed runs (a database query's watermark).
    source_state = models.JSONField(default=dict, blank=True, editable=False)
    mapping = models.JSONField(default=dict, blank=True)
    lookups = models.JSONField(default=dict, blank=True)
    on_error = models.CharField(max_length=20, choices=OnError.choices, default=OnError.REJECT_RECORD)
    destination_connection = models.ForeignKey(
        "connections.Connection", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    destination_format = models.ForeignKey(
        "formats.Format", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    destination_options = models.JSONField(default=dict, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.EVENT)
    schedule = models.CharField(max_length=100, blank=True, default="")
    concurrency = models.PositiveIntegerField(default=0, help_text="Most runs at once; 0: no cap.")
    ordering = models.CharField(
        max_length=10, default="none",
        choices=[("none", "Any order, in parallel"), ("fifo", "One at a time in received order; a failed message holds the queue"),
                 ("fifo_skip", "One at a time in received order; a failed message is skipped")],
    )
    retry = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change; keys the compiled mapping.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def runs_on_arrival(self) -> bool:
        """Whether a payload runs as soon as it arrives (else it waits for the timer or a manual run)."""
        return self.trigger == self.Trigger.EVENT

    def save(self, *args, **kwargs):
        if self.pk:
            self.version = (self.version or 0) + 1
        super().save(*args, **kwargs)


class FlowRun(models.Model):
    """One execution of a flow: its status, counts, log and error."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs", db_index=False)  # see Meta.indexes
    message = models.ForeignKey(
        "listeners.Message", null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    trigger = models.CharField(max_length=10, default="event")
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    records_in = models.PositiveIntegerField(default=0)
    records_out = models.PositiveIntegerField(default=0)
    records_rejected = models.PositiveIntegerField(default=0)
    bytes_read = models.PositiveBigIntegerField(default=0)
    log = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["flow", "-started_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.flow_id} {self.status}"
