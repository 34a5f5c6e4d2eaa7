"""Fixed-width codec: each line is a record, cut into fields by width (in characters).

Reading: values are stripped of surrounding spaces; blank lines are skipped. A line
shorter than the widths is padded (producers and editors often drop trailing
spaces, so the missing fields read as empty); a line longer than the widths is an
error naming the line, unless the extra is only spaces, because it almost always
means the widths are wrong. Writing pads each value to its width (`align`: left,
the default, or right; per field or for all) and truncates what is longer.
"""
from __future__ import annotations

from decimal import Decimal

from . import Codec, CodecError, register_codec
from .fields import field_paths
from .text import text_lines


def _layout(options: dict) -> list[tuple[str, int, str]]:
    fields = options.get("fields")
    if not isinstance(fields, list) or not fields:
        raise CodecError("option 'fields' must list the fields: [{\"name\", \"width\"}, ...]", "options.fields")
    default_align = options.get("align") or "left"
    layout, seen = [], set()
    for number, spec in enumerate(fields):
        where = f"options.fields[{number}]"
        if not isinstance(spec, dict):
            raise CodecError("each field must be an object with 'name' and 'width'", where)
        name, width, align = spec.get("name"), spec.get("width"), spec.get("align") or default_align
        if not isinstance(name, str) or not name:
            raise CodecError("a field needs a non-empty 'name'", where)
        if name in seen:
            raise CodecError(f"field {name!r} appears twice", where)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise CodecError(f"field {name!r} needs a positive whole 'width'", where)
        if align not in ("left", "right"):
            raise CodecError(f"field {name!r}: 'align' is left or right", where)
        seen.add(name)
        layout.append((name, width, align))
    return layout


@register_codec
class FixedCodec(Codec):
    kind = "fixed"
    label = "Fixed width"
    content_type = "text/plain"
    options_schema = {
        "type": "object",
        "properties": {
            "fields": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "width": {"type": "integer", "minimum": 1},
                        "align": {"enum": ["left", "right"]},
                    },
                    "required": ["name", "width"],
                },
            },
            "encoding": {"type": "string", "default": "utf-8"},
            "align": {"enum": ["left", "right"], "default": "left", "title": "Alignment when writing"},
        },
        "required": ["fields"],
        "additionalProperties": True,
    }

    def read(self, data, options):
        layout = _layout(options)
        total = sum(width for _, width, _ in layout)
        # Lines end at \n or \r\n only: a form feed or U+2028 inside a field is data.
        for number, line in enumerate(text_lines(data, options.get("encoding") or "utf-8"), start=1):
            line = line.removesuffix("\n").removesuffix("\r")
            if not line.strip():
                continue
            if len(line) > total and line[total:].strip():
                raise CodecError(f"line has {len(line.rstrip())} characters, the fields cover {total}", f"line {number}")
            record, start = {}, 0
            for name, width, _ in layout:
                record[name] = line[start:start + width].strip()
                start += width
            yield record

    def infer_fields(self, data: bytes, options: dict) -> list[str]:
        return field_paths(self.read(data, options))

    def write(self, records, fields, options, single):
        layout = _layout(options)
        lines = []
        for number, record in enumerate(records, start=1):
            cells = []
            for name, width, align in layout:
                value = _cell(record.get(name))
                if "\n" in value or "\r" in value:
                    raise CodecError(f"field {name!r} holds a line break, which a fixed-width line cannot", f"record {number}")
                value = value[:width]
                cells.append(value.ljust(width) if align == "left" else value.rjust(width))
            lines.append("".join(cells) + "\n")
        encoding = options.get("encoding") or "utf-8"
        try:
            return "".join(lines).encode(encoding)
        except LookupError:
            raise CodecError(f"unknown encoding {encoding!r}") from None
        except UnicodeEncodeError as exc:
            raise CodecError(f"a value cannot be written in {encoding}: {exc.reason}") from None


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dict, list)):
        raise CodecError("a fixed-width field cannot hold a structure")
    return str(value)
