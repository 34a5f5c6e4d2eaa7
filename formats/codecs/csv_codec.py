"""CSV codec: each row is a record (a dict by header name, or col1..colN without a header)."""
from __future__ import annotations

import codecs as stdlib_codecs
import csv
import functools
import io

from . import Codec, CodecError, register_codec
from .fields import field_paths
from .text import decode_error_location, text_stream

csv.field_size_limit(16 * 1024 * 1024)


DIALECTS = {"excel": (",", '"'), "excel-tab": ("\t", '"'), "semicolon": (";", '"')}
# A cell a spreadsheet would run as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _dialect(options: dict) -> dict:
    default_delimiter, default_quote = DIALECTS.get(options.get("dialect") or "excel", DIALECTS["excel"])
    delimiter = options.get("delimiter") or default_delimiter
    quote = options.get("quote") or default_quote
    if delimiter == "\\t":
        delimiter = "\t"
    if len(delimiter) != 1 or len(quote) != 1:
        raise CodecError("delimiter and quote must be one character each")
    dialect = {"delimiter": delimiter, "quotechar": quote}
    escape = options.get("escape")
    if escape:
        if len(escape) != 1:
            raise CodecError("escape must be one character")
        dialect.update(escapechar=escape, doublequote=False)
    return dialect


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
            "dialect": {"enum": list(DIALECTS), "default": "excel", "title": "Spreadsheet dialect"},
            "escape": {"type": "string", "maxLength": 1, "title": "Escape character (instead of doubled quotes)"},
            "skip_rows": {"type": "integer", "minimum": 0, "default": 0, "title": "Lines to skip before the data"},
            "neutralize_formulas": {"type": "boolean", "default": True,
                                    "title": "On write, prefix cells starting with = + - @ with ' (no spreadsheet formulas)"},
        },
        "additionalProperties": True,
    }

    def read(self, data, options):
        encoding = options.get("encoding") or "utf-8"
        text, encoding = text_stream(data, encoding)
        reader = csv.reader(text, strict=True, **_dialect(options))
        skip = int(options.get("skip_rows") or 0)
        header = row = None
        try:
            rows = (row for row in reader if row and reader.line_num > skip) if skip else (row for row in reader if row)
            if not options.get("header", True):
                for row in rows:
                    yield _numbered_row(len(row))(row)
                return
            header = next(rows, None)
            if header is None:
                return
            header = [name.strip() for name in header]
            if len(set(header)) != len(header):
                raise CodecError("duplicate column names in the header", f"line {reader.line_num}")
            row_dict = row_to_dict(header)
            for row in reader if not skip else rows:  # the tight loop: one dict per row
                if row:
                    yield row_dict(row)  # a row of another width fails to unpack: ValueError below
        except csv.Error as exc:
            raise CodecError(f"malformed CSV: {exc}", f"line {reader.line_num}") from None
        except UnicodeDecodeError:
            text.detach()
            raise decode_error_location(data, encoding) from None
        except ValueError:
            if header is None or row is None or len(row) == len(header):
                raise
            raise CodecError(f"row has {len(row)} columns, the header has {len(header)}", f"line {reader.line_num}") from None

    def infer_fields(self, data: bytes, options: dict) -> list[str]:
        """Field paths of a sample payload, for the mapping editor."""
        return field_paths(self.read(data, options))

    streams = True

    def write(self, records, fields, options, single):
        out = io.BytesIO()
        self.write_stream(records, fields, options, out)
        return out.getvalue()

    def write_stream(self, records, fields, options, out):
        """Rows are formatted into a text buffer and encoded every FLUSH_ROWS rows; an
        unencodable character is located by its offset in the whole output."""
        encoding = options.get("encoding") or "utf-8"
        try:
            stdlib_codecs.lookup(encoding)
        except LookupError:
            raise CodecError(f"unknown encoding {encoding!r}") from None
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\r\n", **_dialect(options))
        if options.get("header", True):
            writer.writerow(fields)
        neutralize = options.get("neutralize_formulas", True)
        written = 0
        for number, record in enumerate(records, start=1):
            writer.writerow(["" if record.get(f) is None else _cell(record.get(f), neutralize) for f in fields])
            if number % FLUSH_ROWS == 0:
                written = _flush(buffer, out, encoding, written)
        _flush(buffer, out, encoding, written)


FLUSH_ROWS = 1000
# Past this many columns a row is built with dict(zip()) rather than a compiled function.
COMPILED_COLUMNS = 512


def row_to_dict(header: list[str]):
    """A function from a row (a list as wide as `header`) to its record, the same dict
    `dict(zip(header, row))` is. For up to COMPILED_COLUMNS columns it is compiled from the
    header: unpacking the row and building the dict from constant keys is about twice as
    fast as dict(zip()), and unpacking checks the width (a ValueError for another width).
    The names only ever enter the source as repr() literals, never as code."""
    if len(header) > COMPILED_COLUMNS:
        width = len(header)

        def row_dict(row: list[str]) -> dict:
            if len(row) != width:
                raise ValueError("row width")
            return dict(zip(header, row))  # noqa: B905  the widths were just compared
        return row_dict
    names = [f"v{i}" for i in range(len(header))]
    source = (f"def row_dict(row):\n    {', '.join(names)}, = row\n"
              f"    return {{{', '.join(f'{key!r}: {name}' for key, name in zip(header, names, strict=True))}}}\n")
    namespace: dict = {}
    exec(compile(source, "<csv header>", "exec"), namespace)  # noqa: S102  keys are repr() literals
    return namespace["row_dict"]


@functools.lru_cache(maxsize=64)
def _numbered_row(width: int):
    """The record of a row without a header: col1..colN."""
    return row_to_dict([f"col{i}" for i in range(1, width + 1)])


def _flush(buffer: io.StringIO, out, encoding: str, written: int) -> int:
    """Encode what the buffer holds into `out`; return the characters written so far."""
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    try:
        out.write(text.encode(encoding))
    except UnicodeEncodeError as exc:
        raise CodecError(f"{exc.object[exc.start:exc.end]!r} cannot be written in {encoding}",
                         f"character {written + exc.start} of the output") from None
    return written + len(text)


def _cell(value, neutralize: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) or not neutralize:
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
