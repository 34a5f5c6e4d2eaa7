"""A local HTTP server that records webhook deliveries and answers with scripted status codes,
and a fresh events interest snapshot for every test."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from events.models import Subscription
from events.signing import new_webhook_secret


class Recorder:
    """What the subscriber received; `script` holds the status codes to answer, the last one repeating."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script = [200]
        self.lock = threading.Lock()

    def next_status(self) -> int:
        with self.lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def payloads(self, event: str | None = None) -> list[dict]:
        found = [json.loads(r["body"]) for r in self.requests]
        return [p for p in found if event is None or p["type"] == event]


@pytest.fixture
def subscriber(settings):
    """A subscriber at http://127.0.0.1:<port>/hook (outbound calls to 127.0.0.1 allowed for the test)."""
    settings.PUSHFLOW_OUTBOUND_ALLOW = ["127.0.0.1"]
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = recorder.next_status()
            with recorder.lock:
                recorder.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body, "status": status})
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_subscription(subscriber):
    def make(owner, events, flows=(), **fields) -> tuple[Subscription, str]:
        secret = new_webhook_secret()
        subscription = Subscription(owner=owner, url=subscriber.url, events=list(events), **fields)
        subscription.secret = secret
        subscription.save()
        subscription.flows.set(flows)
        return subscription, secret

    return make


@pytest.fixture(autouse=True)
def _fresh_interest(settings, tmp_path):
    """Ids repeat from test to test: no snapshot of another test's subscriptions may linger."""
    from events import interest

    settings.PUSHFLOW_OUTPUT_DIR = tmp_path / "outputs"
    interest.clear()
    yield
    interest.clear()
