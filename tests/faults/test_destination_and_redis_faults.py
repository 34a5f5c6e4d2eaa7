"""Bursts of 2,000 payloads against faults outside Pushflow, on PostgreSQL + Redis with real
processes: a destination answering 500 then recovering (every message succeeds through its
retries), a destination down past the retries (messages fail with the reason; a bulk
resubmit later succeeds), and Redis stopped and restarted mid-burst (nothing lost)."""
from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.process import Pushflow, create_postgres_database, drop_postgres_database, free_port

from .test_worker_killed_mid_burst import FAST_RECOVERY, count

pytestmark = pytest.mark.e2e
BURST = 2000
REDIS_DB = "8"
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]


class Destination(BaseHTTPRequestHandler):
    """An HTTP destination that answers 500 to its first `failures_left` deliveries, then 200.
    (Counted, not timed: when the worker starts delivering depends on the machine's load.)"""
    failures_left = 0
    received = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Destination.lock:
            Destination.received += 1
            failing = Destination.failures_left > 0
            Destination.failures_left -= failing
        body = b'{"error": "overloaded"}' if failing else b'{"ok": true}'
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def installation(tmp_path):
    database = create_postgres_database()
    subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)
    app = Pushflow(tmp_path, {**FAST_RECOVERY, "DATABASE_URL": database, "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
                              "PUSHFLOW_OUTBOUND_ALLOW": "127.0.0.1", "PUSHFLOW_WORKER_CONCURRENCY": "4"})
    try:
        app.start()
        yield app
    finally:
        app.stop()
        drop_postgres_database(database)


def http_flow(app: Pushflow, path: str, url: str, retry: dict) -> tuple[int, int]:
    fj = app.create("formats", {"name": f"json-{path}", "kind": "json", "options": {}})
    conn = app.create("connections", {"name": f"erp-{path}", "kind": "http",
                                      "options": {"url": url, "retries": 0, "timeout": 5}})
    listener = app.create("listeners", {"name": path, "path": path, "mode": "async", "auth": "token"})
    flow = app.create("flows", {"name": path, "listener": listener["id"], "source_format": fj["id"], "enabled": True,
                                "retry": retry, "mapping": {"fields": [{"target": "id", "source": "id"}]},
                                "destination": {"connection": conn["id"], "format": fj["id"]}})
    return listener["id"], flow["id"]


def burst(app: Pushflow, path: str, during=None) -> list[str]:
    def push(i: int):
        status, body = app.request("POST", f"/listen/{path}", {"id": i})
        return body["message_id"] if status == 202 else None

    with ThreadPoolExecutor(8) as pool:
        answers = pool.map(push, range(BURST))
        if during:
            during()
        answers = list(answers)
    return [a for a in answers if a]


def settle(app: Pushflow, listener: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while count(app, f"messages/?listener={listener}&status=received,queued,running") and time.time() < deadline:
        time.sleep(1)
    assert count(app, f"messages/?listener={listener}&status=received,queued,running") == 0, "messages left unfinished"


def test_a_destination_answering_500_then_recovering_gets_every_message(installation):
    app = installation
    server = ThreadingHTTPServer(("127.0.0.1", 0), Destination)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Destination.failures_left, Destination.received = 300, 0
    try:
        listener, flow = http_flow(app, "flaky", f"http://127.0.0.1:{server.server_address[1]}/in",
                                   {"count": 10, "backoff": 1, "max_delay": 4})
        accepted = burst(app, "flaky")
        assert len(accepted) == BURST
        settle(app, listener)
        assert count(app, f"messages/?listener={listener}&status=succeeded") == BURST
        runs = count(app, f"runs/?flow={flow}")
        assert runs > BURST  # the 500s were retried, not swallowed
        print(f"\n[500 then recovery] {BURST} accepted, {runs} runs, {Destination.received} deliveries tried, all succeeded")
    finally:
        server.shutdown()
        server.server_close()


def test_a_destination_down_past_the_retries_fails_then_a_bulk_resubmit_succeeds(installation):
    app = installation
    port = free_port()
    listener, _ = http_flow(app, "down", f"http://127.0.0.1:{port}/in", {"count": 2, "backoff": 0.5})
    accepted = burst(app, "down")
    assert len(accepted) == BURST
    settle(app, listener)
    assert count(app, f"messages/?listener={listener}&status=failed") == BURST
    failed = app.message(accepted[0])
    assert "could not connect" in failed["error"] and "after 2 tries" in failed["error"]
    server = ThreadingHTTPServer(("127.0.0.1", port), Destination)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Destination.failures_left = 0
    try:
        status, counts = app.request("POST", f"/api/v1/messages/resubmit?listener={listener}&status=failed")
        assert status == 202 and counts["resubmitted"] == BURST
        settle(app, listener)
        assert count(app, f"messages/?listener={listener}&status=succeeded") == BURST
    finally:
        server.shutdown()
        server.server_close()


def test_redis_stopped_and_restarted_mid_burst_loses_nothing(installation):
    app = installation
    fj = app.create("formats", {"name": "json-r", "kind": "json", "options": {}})
    listener = app.create("listeners", {"name": "redis", "path": "redis", "mode": "async", "auth": "token"})
    out = app.create("connections", {"name": "out-r", "kind": "folder", "options": {"path": str(app.var_dir / "out")}})
    app.create("flows", {"name": "redis", "listener": listener["id"], "source_format": fj["id"], "enabled": True,
                         "mapping": {"fields": [{"target": "id", "source": "id"}]},
                         "destination": {"connection": out["id"], "format": fj["id"], "options": {"file_name": "{message_id}.json"}}})

    def outage():
        time.sleep(1)
        subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True)
        time.sleep(3)
        subprocess.run(REDIS_START, check=True, capture_output=True)

    try:
        accepted = burst(app, "redis", during=outage)
    finally:
        if subprocess.run(["redis-cli", "ping"], capture_output=True).returncode != 0:
            subprocess.run(REDIS_START, capture_output=True)
    assert len(accepted) == BURST  # the database holds messages: the broker's outage costs no 2xx
    settle(app, listener["id"])
    assert count(app, f"messages/?listener={listener['id']}") == BURST
    assert count(app, f"messages/?listener={listener['id']}&status=succeeded") == BURST
