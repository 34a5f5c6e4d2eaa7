"""The web server's application (config/asgi.py): a WSGI application run on a thread pool behind
ASGI, driven here with scripted receive/send channels as uvicorn would call it."""
from __future__ import annotations

import asyncio
import threading

import pytest

from config.asgi import PREREAD_BYTES, BodyTimedOut, ThreadedWSGI
from config.http_protocol import SURPLUS, TRUNCATED


def scope(method="POST", path="/x", headers=(), query=b"", client=("10.1.2.3", 5555)) -> dict:
    return {"type": "http", "method": method, "path": path, "query_string": query, "http_version": "1.1",
            "scheme": "http", "server": ("127.0.0.1", 8000), "client": client,
            "headers": [(k.encode(), v.encode()) for k, v in headers]}


class Channel:
    """receive() hands out the scripted messages, then waits (a client that stalls); send() records."""

    def __init__(self, *messages: dict, stall: bool = True):
        self.messages = list(messages)
        self.stall = stall
        self.sent: list[dict] = []
        self.receives = 0

    async def receive(self) -> dict:
        self.receives += 1
        if self.messages:
            return self.messages.pop(0)
        if self.stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def headers(self) -> dict:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def serve(app, request_scope: dict, channel: Channel, read_timeout: float = 5.0):
    bridge = ThreadedWSGI(app, threads=2, read_timeout=read_timeout)
    asyncio.run(bridge(request_scope, channel.receive, channel.send))
    return channel


def echo(seen: dict, read=lambda stream: stream.read()):
    """A WSGI app that records its environ, the thread it ran on and the body it read, and echoes the body."""

    def app(environ, start_response):
        seen["environ"] = environ
        seen["thread"] = threading.current_thread().name
        try:
            seen["body"] = read(environ["wsgi.input"])
        except Exception as exc:  # noqa: BLE001 — the test looks at what reading raised
            seen["error"] = exc
            seen["body"] = b""
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", "yes")])
        return [seen["body"]]

    return app


def body(data: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": data, "more_body": more}


def test_a_small_body_is_read_before_the_thread_runs_and_the_answer_gets_a_length():
    seen = {}
    channel = serve(echo(seen), scope(headers=[("content-length", "11"), ("content-type", "application/json")]),
                    Channel(body(b'{"a":', more=True), body(b' 1234}')))
    assert channel.status == 201 and channel.body == b'{"a": 1234}'
    assert channel.headers["content-length"] == "11" and channel.headers["x-seen"] == "yes"
    assert seen["thread"].startswith("web_") and seen["body"] == b'{"a": 1234}'
    assert seen["environ"]["CONTENT_TYPE"] == "application/json"


def test_a_chunked_body_is_read_by_the_thread_chunk_by_chunk():
    seen = {}
    parts = [body(b"x" * 70_000, more=True), body(b"", more=True), body(b"y" * 10, more=True), body(b"z")]
    channel = serve(echo(seen), scope(headers=[("transfer-encoding", "chunked")]), Channel(*parts))
    assert seen["body"] == b"x" * 70_000 + b"y" * 10 + b"z" and channel.status == 201


def test_a_large_declared_body_is_not_read_ahead():
    """A body over PREREAD_BYTES is left to the application, which may refuse it (413) unread."""
    seen = {}

    def refuse(stream):
        return b""

    channel = Channel(body(b"x" * 10, more=True))
    serve(echo(seen, refuse), scope(headers=[("content-length", str(PREREAD_BYTES + 1))]), channel)
    assert channel.receives == 0 and channel.status == 201


def test_a_body_that_stops_arriving_times_out():
    seen = {}
    serve(echo(seen), scope(headers=[("content-length", "100")]), Channel(body(b"x" * 10, more=True)), read_timeout=0.2)
    assert isinstance(seen["error"], BodyTimedOut) and isinstance(seen["error"], TimeoutError)


def test_a_chunked_body_that_stops_arriving_times_out_in_the_thread():
    seen = {}
    serve(echo(seen), scope(headers=[("transfer-encoding", "chunked")]), Channel(body(b"x", more=True)), read_timeout=0.2)
    assert isinstance(seen["error"], TimeoutError)


def test_a_client_gone_mid_body_gives_a_short_declared_body():
    seen = {}
    serve(echo(seen), scope(headers=[("content-length", "100")]), Channel(body(b"x" * 10, more=True), stall=False))
    assert seen["body"] == b"x" * 10  # fewer bytes than declared: listeners.body refuses it
    assert seen["environ"]["wsgi.input"].scope[TRUNCATED]


def test_a_chunked_body_cut_short_is_an_error_not_a_complete_body():
    seen = {}
    request = scope(headers=[("transfer-encoding", "chunked")])
    request[TRUNCATED] = True  # what the protocol marks when the connection ends inside the body
    serve(echo(seen), request, Channel(body(b"partial")))
    assert isinstance(seen["error"], ConnectionResetError)


def test_surplus_bytes_are_reported_to_the_reader():
    seen = {}
    request = scope(headers=[("content-length", "2")])
    request[SURPLUS] = True
    serve(echo(seen), request, Channel(body(b"{}")))
    assert seen["environ"]["wsgi.input"].surplus_waiting() is True


def test_readline_splits_lines_across_chunks():
    seen = {}

    def lines(stream):
        return b"|".join([stream.readline(), stream.readline(3), stream.readline(), stream.readline()])

    serve(echo(seen, lines), scope(headers=[("transfer-encoding", "chunked")]),
          Channel(body(b"ab", more=True), body(b"c\nde", more=True), body(b"fg\nh")))
    assert seen["body"] == b"abc\n|def|g\n|h"


def test_the_environ_is_built_as_a_wsgi_server_would():
    seen = {}
    headers = [("host", "example.org"), ("x-forwarded-for", "1.2.3.4"), ("x_forwarded_for", "6.6.6.6"),
               ("accept", "a"), ("accept", "b"), ("content-length", "0")]
    serve(echo(seen), scope(method="GET", path="/caf\u00e9", query=b"q=1", headers=headers), Channel(body(b"")))
    environ = seen["environ"]
    assert environ["PATH_INFO"] == "/caf\u00e9".encode().decode("latin-1") and environ["QUERY_STRING"] == "q=1"
    assert environ["REMOTE_ADDR"] == "10.1.2.3" and environ["HTTP_HOST"] == "example.org"
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # the underscore twin was dropped, not merged
    assert environ["HTTP_ACCEPT"] == "a,b" and environ["SERVER_PORT"] == "8000"


def test_a_streaming_answer_is_sent_in_chunks_and_closed_on_its_thread():
    closed = {}

    class Stream:
        streaming = True

        def __iter__(self):
            yield b"a" * 40_000
            yield b"b" * 40_000
            yield b"tail"

        def close(self):
            closed["thread"] = threading.current_thread().name

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Stream()

    channel = serve(app, scope(method="GET"), Channel(body(b"")))
    assert channel.status == 200 and channel.body == b"a" * 40_000 + b"b" * 40_000 + b"tail"
    assert [m.get("more_body", False) for m in channel.sent[1:]] == [True, False]
    assert closed["thread"].startswith("web_")


def test_an_application_error_reaches_the_server():
    def broken(environ, start_response):
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        serve(broken, scope(), Channel(body(b"")))


def test_an_answer_without_a_body_gets_no_length():
    def no_content(environ, start_response):
        start_response("204 No Content", [("Access-Control-Allow-Origin", "https://a.example")])
        return [b""]

    channel = serve(no_content, scope(method="OPTIONS"), Channel(body(b"")))
    assert channel.status == 204 and "content-length" not in channel.headers
