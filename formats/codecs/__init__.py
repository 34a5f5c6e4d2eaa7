"""The codec registry. A codec turns bytes into record trees and records into bytes.

Each codec module defines one `Codec` subclass and registers it with
`@register_codec`; adding a format kind is one module plus one import line below.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, ClassVar

from lib.registry import Registry


class CodecError(Exception):
    """A payload that cannot be read, or records that cannot be written.

    `reason` is for a person; `location` says where (line/column, row, path).
    """

    def __init__(self, reason: str, location: str = ""):
        self.reason = reason
        self.location = location
        super().__init__(f"{reason} ({location})" if location else reason)


class Codec:
    kind: ClassVar[str]
    label: ClassVar[str]
    content_type: ClassVar[str]
    options_schema: ClassVar[dict]
    # Option names whose values are secrets (none for codecs so far).
    secret_options: ClassVar[tuple[str, ...]] = ()
    # What a format's `schema` text is written in: "json-schema" (checked on each record) or "xsd".
    schema_language: ClassVar[str] = "json-schema"

    def read(self, data: bytes, options: dict) -> Iterator[Any]:
        """Yield one record tree per document in the payload (one for JSON, one per CSV row)."""
        raise NotImplementedError

    def write(self, records: Iterable[dict], fields: list[str], options: dict, single: bool) -> bytes:
        """Serialise mapped records. `single`: the run maps one whole payload to one record."""
        raise NotImplementedError

    # True when `write_stream` writes each record as it comes, so a run's memory stays flat
    # however many records it writes (the engine then streams to a spool file).
    streams: ClassVar[bool] = False

    def write_stream(self, records: Iterable[dict], fields: list[str], options: dict, out: BinaryIO) -> None:
        """Write a series of records (never a single-document answer) to `out`; the same bytes
        `write(records, fields, options, single=False)` returns. This default collects them."""
        out.write(self.write(records, fields, options, single=False))

    def single_document(self, options: dict) -> bool:
        """True when a payload is one document (JSON), False when it is a series of rows."""
        return False

    def expression_view(self, value: Any) -> Any:
        """A record as mapping expressions see it: plain JSON values (codecs with richer
        value types override this)."""
        return value

    def validate(self, data: bytes, options: dict) -> None:
        """Raise CodecError if the payload cannot be read."""
        for _ in self.read(data, options):
            pass


codecs: Registry[Codec] = Registry("format")


def register_codec(cls: type[Codec]) -> type[Codec]:
    codecs.register(cls())
    return cls


BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def byte_order_mark(head: bytes, encoding: str) -> tuple[int, str]:
    """(length of the byte-order mark `head` starts with, the encoding it names), or
    (0, `encoding`) without one: a mark decides before any declared charset."""
    for bom, bom_encoding in BOMS:
        if head.startswith(bom):
            return len(bom), bom_encoding
    return 0, encoding


def decode_text(data: bytes, encoding: str) -> str:
    """Bytes to text: a byte-order mark decides first, then `encoding` (the request's
    charset or the format's option). Bad bytes are an error naming their offset."""
    skip, encoding = byte_order_mark(data[:4], encoding)
    data = data[skip:]
    try:
        return data.decode(encoding)
    except LookupError:
        raise CodecError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CodecError(f"bytes not valid {encoding}: {exc.reason}", f"byte {exc.start}, line {line}") from None


from . import csv_codec, fhir_codec, fixed_codec, hl7v2_codec, json_codec, xml_codec  # noqa: E402,F401  registration
