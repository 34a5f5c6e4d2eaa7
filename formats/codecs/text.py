"""Reading payloads as streams: bytes or a binary file, decoded a chunk at a time.

A codec that reads line by line (CSV, JSON Lines, fixed-width) takes its lines from
`text_lines`, so a 100 MB file is never held whole as text; XML reads from `stream`.
Errors name the byte offset and line of the first bad byte, as `decode_text` does.
"""
from __future__ import annotations

import codecs as stdlib_codecs
import io
import sys
from collections.abc import Iterator
from typing import BinaryIO

from . import CodecError, byte_order_mark

CHUNK_BYTES = 1 << 16


def stream(data: bytes | BinaryIO) -> BinaryIO:
    """A binary stream over a payload given as bytes or as an open file."""
    return io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data


def payload_bytes(data: bytes | BinaryIO) -> bytes:
    """The whole payload (for codecs that need it all, like one JSON document)."""
    return bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data.read()


def text_lines(data: bytes | BinaryIO, encoding: str) -> Iterator[str]:
    """Decoded lines, each ending with "\\n" (the last one may not). Lines end at "\\n" only:
    a form feed or U+2028 inside a field is data. A byte-order mark decides the encoding."""
    source = stream(data)
    head = source.read(4)
    skip, encoding = byte_order_mark(head, encoding)
    head = head[skip:]
    try:
        name = stdlib_codecs.lookup(encoding).name
    except LookupError:
        raise CodecError(f"unknown encoding {encoding!r}") from None
    if name in ("utf-16", "utf-32"):  # no byte-order mark: the machine's order, as bytes.decode reads it
        encoding = f"{name}-{'le' if sys.byteorder == 'little' else 'be'}"
    decoder = stdlib_codecs.getincrementaldecoder(encoding)("strict")
    offset, line_number, pending = 0, 1, ""
    chunk = head
    while True:
        final = not chunk
        held = decoder.getstate()[0]  # bytes of an unfinished character from the last chunk
        try:
            text = decoder.decode(chunk, final=final)
        except UnicodeError as exc:
            failed_input = held + chunk
            start = getattr(exc, "start", 0)
            bad = offset - len(held) + start
            line = line_number + pending.count("\n") + failed_input[:start].count(b"\n")
            reason = getattr(exc, "reason", str(exc))
            raise CodecError(f"bytes not valid {encoding}: {reason}", f"byte {bad}, line {line}") from None
        offset += len(chunk)
        if text:
            pending += text
            *complete, pending = pending.split("\n")
            for line in complete:
                line_number += 1
                yield line + "\n"
        if final:
            break
        chunk = source.read(CHUNK_BYTES)
    if pending:
        yield pending


def text_stream(data: bytes | BinaryIO, encoding: str) -> tuple[io.TextIOWrapper, str]:
    """A text stream over the payload for readers that want one (csv): decoding in C, lines
    untranslated. Returns it with the encoding chosen (a byte-order mark decides)."""
    source = stream(data)
    head = source.read(4)
    skip, encoding = byte_order_mark(head, encoding)
    source.seek(source.tell() - len(head) + skip)
    try:
        stdlib_codecs.lookup(encoding)
    except LookupError:
        raise CodecError(f"unknown encoding {encoding!r}") from None
    return io.TextIOWrapper(source, encoding=encoding, errors="strict", newline=""), encoding


def decode_error_location(data: bytes | BinaryIO, encoding: str) -> CodecError:
    """The error `text_lines` gives for the first bad byte (read again from the start: only
    after a fast reader failed, which is rare)."""
    source = stream(data)
    source.seek(0)
    try:
        for _ in text_lines(source, encoding):
            pass
    except CodecError as exc:
        return exc
    return CodecError(f"bytes not valid {encoding}")
