"""CSV codec: each row is a record (a dict by header name, or col1..colN without a header)."""
from __future__ import annotations

import csv
import io

from . import Codec, CodecError, decode_text, register_codec
from .fields import field_paths

csv.field_size_limit(16 * 1024 * 1024)


def _dialect(options: dict) -> dict:
    delimiter = options.get("delimiter") or ","
    quote = options.get("quote") or '"'
    if delimiter == "\\t":
        delimiter = "\t"
    if len(delimiter) != 1 or len(quote) != 1:
        raise CodecError("delimiter and quote must be one character each")
    return {"delimiter": delimiter, "quotechar": quote}


@register_codec
class CsvCodec(Codec):
    kind = "csv"
    label = "CSV"
    content_type = "text/csv"
    options_schema = {
        "type": "object",
        "properties": {
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 2, "default": ","},
            "quote": {"type": "string", "minLength": 1, "maxLength": 1, "default": '"'},
            "header": {"type": "boolean", "default": True},
            "encoding": {"type": "string", "default": "utf-8"},
        },
        "additionalProperties": True,
    }

    def read(self, data, options):
        text = decode_text(data, options.get("encoding") or "utf-8")
        reader = csv.reader(io.StringIO(text, newline=""), strict=True, **_dialect(options))
        header = None
        try:
            for row in reader:
                if not row:
                    continue
                if header is None and options.get("header", True):
                    header = [name.strip() for name in row]
                    if len(set(header)) != len(header):
                        raise CodecError("duplicate column names in the header", "line 1")
                    continue
                names = header or [f"col{i}" for i in range(1, len(row) + 1)]
                if header and len(row) != len(header):
                    raise CodecError(
                        f"row has {len(row)} columns, the header has {len(header)}", f"line {reader.line_num}"
                    )
                yield dict(zip(names, row, strict=False))
        except csv.Error as exc:
            raise CodecError(f"malformed CSV: {exc}", f"line {reader.line_num}") from None

    def infer_fields(self, data: bytes, options: dict) -> list[str]:
        """Field paths of a sample payload, for the mapping editor."""
        return field_paths(self.read(data, options))

    def write(self, records, fields, options, single):
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n", **_dialect(options))
        if options.get("header", True):
            writer.writerow(fields)
        for record in records:
            writer.writerow(["" if record.get(f) is None else _cell(record.get(f)) for f in fields])
        return out.getvalue().encode(options.get("encoding") or "utf-8")


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
