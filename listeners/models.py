"""Listener (an ingest URL with its checks) and Message (one request it received)."""
from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import models
from django.utils import timezone

from connections.crypto import decrypt_secrets, encrypt_secrets

# Listener paths: letters, digits, ". _ ~ -", parts joined by single slashes.
PATH_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9][A-Za-z0-9._~-]*)*$")


def valid_path(path: str) -> bool:
    return bool(PATH_PATTERN.match(path)) and ".." not in path.split("/")


class Listener(models.Model):
    """An HTTP endpoint at /listen/<path> that accepts payloads for one flow."""

    class Mode(models.TextChoices):
        ASYNC = "async", "Async (answer 202 at once)"
        SYNC = "sync", "Sync (answer with the flow's output)"

    class Auth(models.TextChoices):
        NONE = "none", "None"
        BASIC = "basic", "HTTP Basic"
        TOKEN = "token", "Bearer token"
        API_KEY = "api_key", "API key header"
        HMAC = "hmac", "HMAC signature"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="listeners")
    # Teams (Django groups) it is shared with: members may read and use it; the owner changes it.
    teams = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=200, unique=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.ASYNC)
    methods = models.JSONField(default=list, blank=True)
    auth = models.CharField(max_length=10, choices=Auth.choices, default=Auth.TOKEN)
    allowed_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="allowed_listeners",
        help_text="Users allowed to push besides the owner and administrators.",
    )
    api_key_header = models.CharField(max_length=100, blank=True, default="X-API-Key")
    signature = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="", editable=False)
    format = models.ForeignKey("formats.Format", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    max_body_bytes = models.PositiveBigIntegerField(default=10 * 1024 * 1024)
    content_types = models.JSONField(default=list, blank=True, help_text="Accepted media types; empty: any.")
    ip_allowlist = models.JSONField(default=list, blank=True, help_text="Addresses or CIDR ranges allowed to push; empty: any.")
    cors_origins = models.JSONField(
        default=list, blank=True,
        help_text="Web origins (https://app.example.com) whose pages may push from a browser; '*' for any; empty: none.",
    )
    dedupe_window_seconds = models.PositiveIntegerField(
        default=0, help_text="A payload identical to one accepted this many seconds before (and without an "
                             "Idempotency-Key) gets the first one's receipt; 0: off.")
    retention_days = models.PositiveIntegerField(
        default=30, help_text="Finished messages older than this many days are deleted with their runs; 0: kept forever.")
    rate_limit = models.FloatField(default=0, help_text="Requests per second per web process; 0: no limit.")
    max_concurrent = models.PositiveIntegerField(default=0, help_text="Requests at once per web process; 0: no cap.")
    timeout_seconds = models.FloatField(default=30.0, help_text="Sync mode: answer 504 past this.")
    expected_gap_minutes = models.PositiveIntegerField(
        default=0, help_text="The dashboard warns when no payload arrived for longer than this; 0: never.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} (/listen/{self.path})"

    @property
    def allowed_methods(self) -> list[str]:
        return [m.upper() for m in (self.methods or ["POST"])]

    @property
    def secrets(self) -> dict:
        return decrypt_secrets(self.secrets_encrypted)

    @secrets.setter
    def secrets(self, values: dict) -> None:
        self.secrets_encrypted = encrypt_secrets(values or {})

    def address_allowed(self, address: str) -> bool:
        if not self.ip_allowlist:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(block, strict=False) for block in self.ip_allowlist)

    def cors_allows(self, origin: str) -> bool:
        """Whether a browser page from `origin` may call this listener."""
        return bool(origin) and ("*" in self.cors_origins or origin.rstrip("/").lower() in self.cors_origins)

    def user_may_push(self, user) -> bool:
        if user is None or not user.is_active:
            return False
        if user.is_superuser or user.pk == self.owner_id:
            return True
        if self.allowed_users.filter(pk=user.pk).exists():
            return True
        return self.teams.filter(pk__in=user.groups.values("pk")).exists()


class Message(models.Model):
    """One request that reached a listener: kept whole, run, and auditable afterwards."""

    # Shared with the teams of its listener and of its flow (see config.api.visible_to).
    TEAM_FIELDS = ("listener__teams", "flow__teams")

    class Status(models.TextChoices):
        RECEIVED = "received"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.REJECTED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        help_text="Owner of the listener at arrival; keeps the message visible if the listener goes.",
    )
    # owner, listener and flow are looked up through the (column, -received_at) indexes of Meta: an index
    # of the column alone would only be one more to write at each message's insert and status change.
    listener = models.ForeignKey(Listener, null=True, on_delete=models.SET_NULL, related_name="messages", db_index=False)
    flow = models.ForeignKey("flows.Flow", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages",
                             db_index=False)
    received_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    query = models.TextField(blank=True, default="")
    headers = models.JSONField(default=dict, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True, default="")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    content_type = models.CharField(max_length=200, blank=True, default="")
    charset = models.CharField(max_length=40, blank=True, default="")
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    # A body that is valid UTF-8 is kept as text (searchable with `q`), others as bytes.
    body_text = models.TextField(null=True, blank=True)
    body = models.BinaryField(null=True, blank=True)
    body_file = models.CharField(max_length=300, blank=True, default="")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.CharField(max_length=200, blank=True, default="")
    response_body = models.BinaryField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    resubmitted_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                         db_index=False)  # indexed where set (Meta): most messages are no copy

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["status", "enqueued_at"]),
            models.Index(fields=["listener", "-received_at"]),
            models.Index(fields=["owner", "-received_at"]),
            models.Index(fields=["flow", "-received_at"]),
            models.Index(fields=["resubmitted_from"], name="message_resubmitted_from",
                         condition=models.Q(resubmitted_from__isnull=False)),
        ]
        constraints = [
            # Idempotency at the door: one accepted message per key and listener, even under a race.
            models.UniqueConstraint(
                fields=["listener", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                name="one_message_per_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.status}"

    @classmethod
    def fresh(cls, **values) -> Message:
        """A new, unsaved message from these field values (by attname) and the fields' defaults.

        Built through Model.__init__'s positional fast path: the ingest path makes one per
        request, and keyword construction (a default looked up and a descriptor set per
        field) cost about a fifth of the whole view.
        """
        row = []
        for attname, default in _fresh_defaults(cls):
            if attname in values:
                row.append(values.pop(attname))
            else:
                row.append(default() if callable(default) else default)
        if values:
            raise TypeError(f"unknown Message fields: {', '.join(values)}")
        return cls(*row)

    def store_body(self, data: bytes) -> None:
        """Keep `data` inline when small, in a file (flushed to disk) when large."""
        self.size = len(data)
        self.sha256 = hashlib.sha256(data).hexdigest()
        if len(data) <= settings.PUSHFLOW_INLINE_BODY_BYTES:
            try:
                if b"\x00" in data:  # PostgreSQL text cannot hold NUL: keep such bodies as bytes
                    raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
                self.body_text, self.body = data.decode("utf-8"), None
            except UnicodeDecodeError:
                self.body_text, self.body = None, data
            return
        relative = Path(timezone.now().strftime("%Y/%m/%d")) / f"{self.id}.body"
        target = Path(settings.PUSHFLOW_BODY_DIR) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.body = self.body_text = None
        self.body_file = str(relative)

    def open_body(self) -> BinaryIO:
        """The payload as a binary stream: large bodies are read from their file as needed."""
        if self.body_file:
            return open(Path(settings.PUSHFLOW_BODY_DIR) / self.body_file, "rb")  # noqa: SIM115  the caller closes it
        return io.BytesIO(self.read_body())

    def read_body(self) -> bytes:
        if self.body_file:
            return (Path(settings.PUSHFLOW_BODY_DIR) / self.body_file).read_bytes()
        if self.body_text is not None:
            return self.body_text.encode("utf-8")
        return bytes(self.body or b"")


def _fresh_defaults(model) -> list[tuple[str, object]]:
    """(attname, default or a callable making it) for each concrete field, in field order."""
    cached = model.__dict__.get("_fresh_defaults_cache")
    if cached is None:
        cached = []
        for field in model._meta.concrete_fields:
            if field.has_default():
                default = field.default
            elif field.null or field.is_relation:
                default = None
            else:
                default = field.get_default()
            cached.append((field.attname, default))
        model._fresh_defaults_cache = cached
    return cached
