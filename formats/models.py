"""Format: a named, configured codec (kind + options), with an optional schema and sample."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from .codecs import Codec, CodecError, codecs
from .schemas import SchemaError, XsdChecker, compile_schema


class Format(models.Model):
    """How payloads of one shape are read and written."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="formats")
    # Teams (Django groups) it is shared with: members may read and use it; the owner changes it.
    teams = models.ManyToManyField("auth.Group", blank=True, related_name="+")
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

    def options_for(self, charset: str = "") -> dict:
        """The options to read a payload with: the request's charset, when it gave one,
        replaces the format's `encoding` (a byte-order mark still comes first)."""
        options = self.options or {}
        if charset and "encoding" in self.codec.options_schema.get("properties", {}):
            options = {**options, "encoding": charset}
        return options

    def read(self, data: bytes, charset: str = ""):
        return self.codec.read(data, self.options_for(charset))

    def schema_checker(self):
        """The compiled `schema` (None without one), kept on this instance."""
        cached = getattr(self, "_schema_checker", None)
        if cached is None or cached[0] != self.schema:
            cached = (self.schema, compile_schema(self.codec.schema_language, self.schema))
            self._schema_checker = cached
        return cached[1]

    def validate_payload(self, data: bytes, charset: str = "") -> None:
        """Raise CodecError if `data` cannot be read in this format or breaks its schema."""
        options = self.options_for(charset)
        try:
            checker = self.schema_checker()
        except SchemaError as exc:
            raise CodecError(f"the format's schema cannot be used: {exc.reason}") from None
        if checker is None:
            self.codec.validate(data, options)
        elif isinstance(checker, XsdChecker):
            self.codec.validate(data, options)
            checker.check_bytes(data)
        else:
            for number, record in enumerate(self.codec.read(data, options), start=1):
                try:
                    checker.check(record)
                except CodecError as exc:
                    if number == 1 and self.codec.single_document(options):
                        raise
                    raise CodecError(exc.reason, f"record {number}, {exc.location}") from None
