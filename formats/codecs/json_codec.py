"""JSON codec: one document per payload, or one per line with `lines: true` (NDJSON)."""
from __future__ import annotations

from decimal import Decimal

import orjson

from . import Codec, CodecError, decode_text, register_codec
from .fields import field_paths
from .text import payload_bytes, text_lines


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def _load(text: str, line_offset: int = 0):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        # orjson reports line/column like the standard library does.
        return _raise(exc, line_offset)


def _raise(exc: orjson.JSONDecodeError, line_offset: int):
    raise CodecError(f"malformed JSON: {exc.msg}", f"line {exc.lineno + line_offset}, column {exc.colno}") from None


@register_codec
class JsonCodec(Codec):
    kind = "json"
    label = "JSON"
    content_type = "application/json"
    options_schema = {
        "type": "object",
        "properties": {
            "lines": {"type": "boolean", "default": False, "title": "One JSON document per line (NDJSON)"},
            "encoding": {"type": "string", "default": "utf-8"},
        },
        "additionalProperties": True,
    }

    def single_document(self, options):
        return not options.get("lines")

    def read(self, data, options):
        encoding = options.get("encoding") or "utf-8"
        if not options.get("lines"):
            text = decode_text(payload_bytes(data), encoding)
            if not text.strip():
                raise CodecError("empty JSON payload", "line 1, column 1")
            yield _load(text)
            return
        # NDJSON lines end at "\n" only: str.splitlines() would also split inside
        # strings at U+0085 or U+2028, which JSON allows unescaped. Read as a stream.
        for number, line in enumerate(text_lines(data, encoding), start=1):
            line = line.removesuffix("\n").removesuffix("\r")
            if line.strip():
                yield _load(line, number - 1)

    def infer_fields(self, data: bytes, options: dict) -> list[str]:
        """Field paths of a sample payload, for the mapping editor."""
        return field_paths(self.read(data, options))

    streams = True

    def write(self, records, fields, options, single):
        records = list(records)
        if options.get("lines"):
            return b"".join(orjson.dumps(r, default=_json_default) + b"\n" for r in records)
        body = records[0] if single and len(records) == 1 else records
        return orjson.dumps(body, default=_json_default)

    def write_stream(self, records, fields, options, out):
        """One record at a time: a line each, or the items of one array (orjson writes
        `[a,b]` with no spaces, so the bytes equal `write`'s)."""
        if options.get("lines"):
            for record in records:
                out.write(orjson.dumps(record, default=_json_default) + b"\n")
            return
        separator = b"["
        for record in records:
            out.write(separator + orjson.dumps(record, default=_json_default))
            separator = b","
        out.write(b"[]" if separator == b"[" else b"]")
