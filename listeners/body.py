"""Reading a request body whole, with a cap, from the WSGI stream itself.

Django reads a request without Content-Length as an empty body, so a chunked
upload would look like an empty payload. Here the body is read from
`wsgi.input` directly (the server decodes chunked transfer coding), never past
the cap, and a Content-Length that does not match the bytes sent is refused:

- fewer bytes than declared: the client closed or stalled before the end (400);
- more bytes than declared: the surplus is already waiting on the connection
  and is not the start of a pipelined request (400), where a naive reader would
  keep a silently truncated payload.
"""
from __future__ import annotations

import re
import socket
import zlib

READ_CHUNK = 64 * 1024
_PIPELINED = re.compile(rb"^[A-Z]{3,10} (/|\*|https?://)")


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
    sock = environ.get("gunicorn.socket")
    previous_timeout = sock.gettimeout() if sock is not None else None
    if sock is not None:
        sock.settimeout(read_timeout)
    try:
        if declared.strip() and not chunked:
            return _read_declared(stream, declared, cap, environ)
        if chunked or environ.get("wsgi.input_terminated"):
            return _read_to_end(stream, cap)
        return b""  # no length, not chunked, a server that cannot tell the end: no body (RFC 9112 6.3)
    except TimeoutError:
        raise BodyError(400, "the request body stopped arriving before it was complete (timed out)") from None
    except BodyError:
        raise
    except (OSError, ValueError) as exc:
        raise BodyError(400, f"the request body could not be read: {exc.__class__.__name__}") from None
    except Exception as exc:  # the server's own "no more data" / bad chunk errors
        raise BodyError(400, f"the request body is incomplete or malformed ({exc.__class__.__name__})") from None
    finally:
        if sock is not None:
            try:
                sock.settimeout(previous_timeout)
            except OSError:
                pass


def _read_declared(stream, declared: str, cap: int, environ: dict) -> bytes:
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
    if _surplus_waiting(environ, stream):
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


def _surplus_waiting(environ: dict, stream) -> bool:
    """True when bytes beyond the declared body already sit on the connection.

    Bytes that start like a request line are a pipelined next request, not surplus.
    Works with gunicorn (its read-ahead buffer and socket); other servers: False.
    """
    waiting = b""
    unreader = getattr(getattr(stream, "reader", None), "unreader", None)
    buffered = getattr(unreader, "buf", None)
    if buffered is not None:
        waiting = buffered.getvalue()[:64]
    sock = environ.get("gunicorn.socket")
    if not waiting and sock is not None:
        try:
            # Non-blocking for the peek: a socket with a timeout would wait for data first.
            # read_body() puts the previous timeout back afterwards.
            sock.setblocking(False)
            waiting = sock.recv(64, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            waiting = b""
        except OSError:
            waiting = b""
    if not waiting:
        return False
    # A bare CRLF after a body is tolerated (RFC 9112 2.2); a request line is pipelining.
    stripped = waiting.lstrip(b"\r\n")
    return bool(stripped) and not _PIPELINED.match(stripped)


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
