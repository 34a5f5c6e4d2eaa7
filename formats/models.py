"""Format: a named, configured codec (kind + options), with an optional schema and sample."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from .codecs import Codec, codecs


class Format(models.Model):
    """How payloads of one shape are read and written."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="formats")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    options = models.JSONField(default=dict, blank=True)
    schema = models.TextField(blank=True, default="", help_text="JSON Schema or XSD checked at the door.")
    sample = models.TextField(blank=True, default="", help_text="A sample payload, for field inference.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def codec(self) -> Codec:
        return codecs.get(self.kind)

    def read(self, data: bytes):
        return self.codec.read(data, self.options or {})

    def validate_payload(self, data: bytes) -> None:
        """Raise CodecError if `data` cannot be read in this format."""
        self.codec.validate(data, self.options or {})
