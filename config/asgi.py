"""The web server's application (uvicorn, see config/launcher.py): Django's WSGI application,
the lean /listen/ route included (config/wsgi.py), run on a pool of threads.

uvicorn parses HTTP in C (httptools) on an event loop; each request then costs one hand-off
to a pool thread and one back. The thread runs Django as a WSGI server would and builds the
whole answer; the loop writes it. A streaming answer (a file, an export) is sent chunk by
chunk from the thread instead. Django's own ASGI handler was measured and not used: a bare
view cost about 6 ms of CPU per request there (a new thread per request, middleware adapted
one by one) against about 1 ms here.

The request body: one with a declared length of up to PREREAD_BYTES is read on the loop
before the hand-off, so a pool thread never waits for the network on a small payload; a
larger or chunked one is read by the thread through `RequestBody`, chunk by chunk from the
loop. Every read of a body waits at most PUSHFLOW_BODY_READ_TIMEOUT_SECONDS for more bytes.
"""
from __future__ import annotations

import asyncio
import os
import queue
import sys
import threading

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings  # noqa: E402

from config.http_protocol import SURPLUS, TRUNCATED  # noqa: E402
from config.wsgi import LEAN_PREFIX, answer_on_loop  # noqa: E402
from config.wsgi import application as wsgi_application  # noqa: E402
from lib.env import env_int  # noqa: E402
from lib.loops import settle  # noqa: E402

PREREAD_BYTES = 64 * 1024
NO_BODY_STATUSES = frozenset({100, 101, 102, 103, 204, 304})
SEND_CHUNK = 64 * 1024


class BodyTimedOut(TimeoutError):
    pass


class RequestBody:
    """`wsgi.input` for one request: the bytes read ahead on the loop, then more fetched from the
    loop as the application reads. At the end of the body `read` gives b""; a body cut short
    (the client closed, or its chunked coding broke) gives b"" when its length was declared (the
    reader sees fewer bytes than declared) and raises ConnectionResetError when it was chunked."""

    def __init__(self, loop, receive, scope: dict, buffered: bytes, more: bool, chunked: bool, timeout: float):
        self.loop = loop
        self.receive = receive
        self.scope = scope
        self.buffer = bytearray(buffered)
        self.more = more
        self.chunked = chunked
        self.read_timeout = timeout
        self.timed_out = False
        self.declared = -1  # the Content-Length, once read ahead

    def whole(self) -> bytes | None:
        """The body, when all of it (as much as Content-Length declared) was read ahead and nothing
        went wrong; None otherwise. Reads nothing: the body can still be read after."""
        if self.more or self.timed_out or self.chunked or self.scope.get(TRUNCATED) or self.surplus_waiting():
            return None
        return bytes(self.buffer) if len(self.buffer) == self.declared else None

    def surplus_waiting(self) -> bool:
        """True when bytes past the declared length arrived that do not start a next request."""
        return bool(self.scope.get(SURPLUS))

    def _fetch(self) -> bytes:
        if self.timed_out:
            raise BodyTimedOut("the request body stopped arriving")
        if not self.more:
            if self.chunked and self.scope.get(TRUNCATED):
                raise ConnectionResetError("the connection ended before the last chunk of the body")
            return b""
        future = asyncio.run_coroutine_threadsafe(self.receive(), self.loop)
        try:
            message = future.result(self.read_timeout)
        except TimeoutError:
            future.cancel()
            self.timed_out = True
            raise BodyTimedOut("the request body stopped arriving") from None
        return self.take(message)

    def take(self, message: dict) -> bytes:
        """The bytes of one ASGI receive message; notes whether more will follow."""
        if message["type"] != "http.request":  # http.disconnect: the client is gone
            self.scope[TRUNCATED] = True
            self.more = False
            return b""
        self.more = message.get("more_body", False)
        return message.get("body", b"")

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = self._fetch()
            if not chunk:
                if self.more:
                    continue  # an empty message, more to come
                break
            self.buffer += chunk
        return self._taken(size)

    def readline(self, size: int = -1) -> bytes:
        while True:
            end = self.buffer.find(b"\n", 0, size if size >= 0 else None)
            if end >= 0:
                return self._taken(end + 1)
            if 0 <= size <= len(self.buffer):
                return self._taken(size)
            chunk = self._fetch()
            if not chunk:
                if self.more:
                    continue
                return self._taken(-1)
            self.buffer += chunk

    def _taken(self, size: int) -> bytes:
        if size < 0 or size >= len(self.buffer):
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def __iter__(self):
        while line := self.readline():
            yield line


def _environ(scope: dict, body: RequestBody) -> dict:
    """The WSGI environ of an ASGI HTTP scope, as gunicorn built it: headers with an underscore
    in their name are dropped (they would pass for the hyphenated header of the same name)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/" + scope["http_version"],
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 0),
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        if "_" in name:
            continue
        if name == "content-length":
            key = "CONTENT_LENGTH"
        elif name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        environ[key] = environ[key] + "," + value if key in environ else value
    return environ


class Answer:
    """What the application answered: status and headers, and the whole body unless it was streamed."""

    __slots__ = ("status", "headers", "body", "streamed")

    def __init__(self):
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.streamed = False

    def start_response(self, status: str, headers: list, exc_info=None):
        self.status = int(status[:3])
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return self._write_unsupported

    @staticmethod
    def _write_unsupported(data: bytes):
        raise NotImplementedError("the write() callable of WSGI is not supported; return an iterable")


class ThreadPool:
    """Threads that run calls for an event loop: `await pool.run(loop, fn, *args)`.

    What loop.run_in_executor does, without its two chained futures (a concurrent one, then an
    asyncio one wrapping it): the thread resolves the loop's future directly. Under an ingest
    flood that plumbing cost about a tenth of the web's CPU (py-spy)."""

    def __init__(self, size: int, name: str):
        self.size = size
        self.name = name
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def run(self, loop, fn, *args) -> asyncio.Future:
        if len(self._threads) < self.size:
            self._add_thread()
        future = loop.create_future()
        self._calls.put((loop, future, fn, args))
        return future

    def _add_thread(self) -> None:
        with self._lock:
            if len(self._threads) < self.size:
                thread = threading.Thread(target=self._serve, name=f"{self.name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _serve(self) -> None:
        while True:
            loop, future, fn, args = self._calls.get()
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 — the awaiting request raises it
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(settle, future, result, error)
            except RuntimeError:
                pass  # the loop has closed (shutdown): nobody awaits this call any more


class ThreadedWSGI:
    """An ASGI application running a WSGI application on a thread pool (see the module docstring)."""

    def __init__(self, app, threads: int, read_timeout: float, on_loop=None, on_loop_prefix: str = "/"):
        """`on_loop(environ, body)`, for requests under `on_loop_prefix` whose whole body was read
        ahead: a coroutine answering (status, header list, body) without a thread, or None to
        hand the request to a thread after all (config/wsgi.py `answer_on_loop`)."""
        self.app = app
        self.pool = ThreadPool(threads, "web")
        self.read_timeout = read_timeout
        self.on_loop = on_loop
        self.on_loop_prefix = on_loop_prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000})
            return
        loop = asyncio.get_running_loop()
        body = await self._body(loop, scope, receive)
        if self.on_loop is not None and scope["path"].startswith(self.on_loop_prefix):
            data = body.whole()
            if data is not None:
                answer = await self.on_loop(_environ(scope, body), data)
                if answer is not None:
                    status, headers, content = answer
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": content})
                    return
        answer = await self.pool.run(loop, self._run, loop, scope, body, send)
        if not answer.streamed:
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
            await send({"type": "http.response.body", "body": answer.body})

    async def _body(self, loop, scope, receive) -> RequestBody:
        headers = dict(scope["headers"])
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        body = RequestBody(loop, receive, scope, b"", True, chunked, self.read_timeout)
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        if chunked or not 0 < declared <= PREREAD_BYTES:
            return body  # read by the thread, as the application asks for it
        body.declared = declared
        # uvicorn's request cycle flags when a receive() would not wait: then it is awaited as is,
        # without the task a timeout needs (under load that task was a twentieth of the CPU).
        arrived = getattr(getattr(receive, "__self__", None), "message_event", None)
        deadline = loop.time() + self.read_timeout
        while body.more and len(body.buffer) < declared:
            try:
                if arrived is not None and arrived.is_set():
                    message = await receive()
                else:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                body.timed_out = True
                break
            body.buffer += body.take(message)
        return body

    def _run(self, loop, scope, body: RequestBody, send) -> Answer:
        answer = Answer()
        iterable = self.app(_environ(scope, body), answer.start_response)
        try:
            if isinstance(iterable, list) or getattr(iterable, "streaming", True) is False:
                answer.body = b"".join(iterable)
                if answer.status not in NO_BODY_STATUSES and not any(name == b"content-length" for name, _ in answer.headers):
                    answer.headers.append((b"content-length", str(len(answer.body)).encode()))
            else:
                answer.streamed = True
                self._stream(loop, answer, iterable, send)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()  # Django's request_finished (database connections of this thread) runs here
        return answer

    @staticmethod
    def _stream(loop, answer: Answer, iterable, send) -> None:
        def sent(message):
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        sent({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        pending = bytearray()
        for chunk in iterable:
            pending += chunk
            if len(pending) >= SEND_CHUNK:
                sent({"type": "http.response.body", "body": bytes(pending), "more_body": True})
                pending.clear()
        sent({"type": "http.response.body", "body": bytes(pending)})


# A payload's thread waits for its group commit (listeners/writer.py), so a process needs more
# threads than cores: with 8 a process ran out of threads before it ran out of CPU under a
# 32-connection flood; 16 gave ingest +18% embedded, +39% PostgreSQL (bench/ingest.py,
# alternated runs, under gunicorn's gthread workers); 32 was worse.
application = ThreadedWSGI(wsgi_application, env_int("PUSHFLOW_WEB_THREADS", 16),
                           settings.PUSHFLOW_BODY_READ_TIMEOUT_SECONDS, answer_on_loop, LEAN_PREFIX)
