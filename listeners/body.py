"""Reading a request body whole, with a cap, from the WSGI stream itself.

Django reads a request without Content-Length as an empty body, so a chunked
upload would look like an empty payload. Here the body is read from
`wsgi.input` directly (the server decodes chunked transfer coding), never past
the cap, and a Content-Length that does not match the bytes sent is refused:

- fewer bytes than declared: the client closed or stalled before the end (400);
- more bytes than declared: the surplus is already waiting on the connection
  and is not the start of a pipelined request (400), where a naive reader would
  keep a silently truncated payload.

The stream is the web server's (config/asgi.py `RequestBody`): it takes a read
timeout (`read_timeout`) and tells whether surplus bytes arrived
(`surplus_waiting()`). A stream without them (Django's test client) is read as is.
"""
from __future__ import annotations

import zlib

READ_CHUNK = 64 * 1024


class BodyError(Exception):
    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(reason)


def read_body(environ: dict, cap: int, read_timeout: float = 10.0) -> bytes:
    """The whole request body, or BodyError (413 past `cap`, 400 for a lying length)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    declared = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if hasattr(stream, "read_timeout"):
        stream.read_timeout = read_timeout
    try:
        if declared.strip() and not chunked:
            return _read_declared(stream, declared, cap)
        if chunked or environ.get("wsgi.input_terminated"):
            return _read_to_end(stream, cap)
        return b""  # no length, not chunked, a server that cannot tell the end: no body (RFC 9112 6.3)
    except TimeoutError:
        raise BodyError(400, "the request body stopped arriving before it was complete (timed out)") from None
    except BodyError:
        raise
    except (OSError, ValueError) as exc:
        raise BodyError(400, f"the request body could not be read: {exc}") from None
    except Exception as exc:  # the server's own "no more data" / bad chunk errors
        raise BodyError(400, f"the request body is incomplete or malformed ({exc.__class__.__name__})") from None


def _read_declared(stream, declared: str, cap: int) -> bytes:
    try:
        length = int(declared)
    except ValueError:
        raise BodyError(400, f"Content-Length {declared!r} is not a number") from None
    if length < 0:
        raise BodyError(400, "Content-Length is negative")
    if length > cap:
        raise BodyError(413, f"the body is {length} bytes; this listener accepts at most {cap}")
    parts, remaining = [], length
    while remaining > 0:
        chunk = stream.read(min(READ_CHUNK, remaining))
        if not chunk:
            got = length - remaining
            raise BodyError(400, f"the body ended after {got} bytes but Content-Length said {length}")
        parts.append(chunk)
        remaining -= len(chunk)
    if getattr(stream, "surplus_waiting", bool)():
        raise BodyError(400, f"more bytes arrived than the Content-Length of {length} declared")
    return b"".join(parts)


def _read_to_end(stream, cap: int) -> bytes:
    parts, total = [], 0
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > cap:
            raise BodyError(413, f"the body is larger than this listener's limit of {cap} bytes")
        parts.append(chunk)


def decode_content_encoding(data: bytes, encoding: str, cap: int) -> bytes:
    """Undo gzip/deflate request compression, never producing more than `cap` bytes (a zip bomb is a 413)."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
    # wbits: 16+ reads a gzip wrapper; deflate bodies come zlib-wrapped (RFC 9110) or, from some clients, raw.
    attempts = (16 + zlib.MAX_WBITS,) if "gzip" in encoding else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
    for number, wbits in enumerate(attempts):
        try:
            return _inflate(data, wbits, cap)
        except zlib.error as exc:
            if number == len(attempts) - 1:
                raise BodyError(400, f"the {encoding} body is corrupt: {exc}") from None
    raise AssertionError("unreachable")


def _inflate(data: bytes, wbits: int, cap: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    parts, total, pending = [], 0, data
    while pending:
        chunk = inflater.decompress(pending, READ_CHUNK)
        total += len(chunk)
        if total > cap:
            raise BodyError(413, f"the body decompresses to more than this listener's limit of {cap} bytes")
        parts.append(chunk)
        pending = inflater.unconsumed_tail
        if inflater.eof:
            break
    if not inflater.eof:
        raise zlib.error("the compressed stream is truncated")
    return b"".join(parts)
