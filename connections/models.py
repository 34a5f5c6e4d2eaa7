"""Connection: a configured transport (kind + options) with secrets encrypted at rest."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from .crypto import decrypt_secrets, encrypt_secrets
from .transports import Transport, transports


class Connection(models.Model):
    """A place flows write to or read from: an HTTP service, a database, a folder."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections")
    # Teams (Django groups) it is shared with: members may read and use it; the owner changes it.
    teams = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    options = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def transport(self) -> Transport:
        return transports.get(self.kind)

    @property
    def secrets(self) -> dict:
        return decrypt_secrets(self.secrets_encrypted)

    @secrets.setter
    def secrets(self, values: dict) -> None:
        self.secrets_encrypted = encrypt_secrets({k: v for k, v in (values or {}).items() if v not in (None, "")})

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets)
