"""Pushes accepted on the web server's event loop, end to end (embedded default): with the only
request thread held by a stalled upload, a plain push is still answered 202 and kept, with the
answer a thread gives; turned off (PUSHFLOW_LOOP_INGEST=0), it waits for the thread."""
from __future__ import annotations

import json
import socket
import time

import pytest

from .process import Pushflow, status_of

pytestmark = pytest.mark.e2e
READ_TIMEOUT = 8  # how long the stalled upload holds the thread
ONE_THREAD = {"PUSHFLOW_WEB_WORKERS": "1", "PUSHFLOW_WEB_THREADS": "1", "PUSHFLOW_LISTENER_CACHE_SECONDS": "60",
              "PUSHFLOW_TOKEN_CACHE_SECONDS": "60", "PUSHFLOW_BODY_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)}


def _server(tmp_path_factory, name: str, env: dict):
    app = Pushflow(tmp_path_factory.mktemp(name), {**ONE_THREAD, **env})
    app.start("web")
    app.create("listeners", {"name": "loop", "path": "e2e/loop", "mode": "async", "auth": "token"})
    return app


@pytest.fixture(scope="module")
def loop_on(tmp_path_factory):
    app = _server(tmp_path_factory, "loop-on", {})
    yield app
    app.stop()


@pytest.fixture(scope="module")
def loop_off(tmp_path_factory):
    app = _server(tmp_path_factory, "loop-off", {"PUSHFLOW_LOOP_INGEST": "0"})
    yield app
    app.stop()


def _push(app: Pushflow, index: int) -> bytes:
    body = json.dumps({"id": index, "name": {"family": "Loop"}}).encode()
    return app.raw(f"POST /listen/e2e/loop HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {app.token}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body, timeout=30)


def _stalled_upload(app: Pushflow) -> socket.socket:
    """A chunked upload that stops after its first chunk: the view reads it on the only thread."""
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=30)
    sock.sendall(f"POST /listen/e2e/loop HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {app.token}\r\n"
                 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"\r\n".encode())
    time.sleep(0.5)  # the thread is now inside the view, waiting for the next chunk
    return sock


def _head(response: bytes) -> dict:
    lines = response.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


def _answered(sock: socket.socket) -> bytes:
    sock.settimeout(READ_TIMEOUT + 10)
    try:
        return sock.recv(65536)
    finally:
        sock.close()


def test_a_plain_push_is_answered_while_the_only_thread_is_held(loop_on):
    on_thread = _push(loop_on, 1)  # loads the listener and checks the token, on the thread
    assert status_of(on_thread) == 202, on_thread
    stalled = _stalled_upload(loop_on)
    started = time.monotonic()
    on_loop = _push(loop_on, 2)
    waited = time.monotonic() - started
    stalled.setblocking(False)
    with pytest.raises(BlockingIOError):
        stalled.recv(1)  # the stalled upload is still unanswered: the push did not wait for its thread
    assert status_of(on_loop) == 202 and waited < READ_TIMEOUT, on_loop
    assert set(_head(on_loop)) == set(_head(on_thread))
    assert {k: v for k, v in _head(on_loop).items() if k not in ("x-message-id", "content-length", "date")} == \
        {k: v for k, v in _head(on_thread).items() if k not in ("x-message-id", "content-length", "date")}
    message_id = json.loads(on_loop.split(b"\r\n\r\n", 1)[1])["message_id"]
    status, body = loop_on.request("GET", f"/api/v1/messages/{message_id}/body")
    assert status == 200 and body == {"id": 2, "name": {"family": "Loop"}}
    assert status_of(_answered(stalled)) == 400  # its read timed out: kept as a refusal, not accepted
    _, page = loop_on.request("GET", "/api/v1/messages/?limit=10")
    assert sorted(m["status"] for m in page["results"]) == ["received", "received", "rejected"]


def test_turned_off_a_push_waits_for_the_thread(loop_off):
    assert status_of(_push(loop_off, 1)) == 202
    stalled = _stalled_upload(loop_off)
    started = time.monotonic()
    answer = _push(loop_off, 2)
    assert status_of(answer) == 202 and time.monotonic() - started > READ_TIMEOUT / 2, answer
    assert status_of(_answered(stalled)) == 400
