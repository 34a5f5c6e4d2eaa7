"""Start Pushflow for a benchmark, talk to its API, run wrk, and record results."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ADMIN = ("bench-admin", "bench-Pass-2026!")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


class Server:
    """A running Pushflow (web, worker, scheduler) on a free port with its own var/ folder."""

    def __init__(self, env: dict, settings: str = "bench.baseline_settings"):
        self.port = free_port()
        self.var = tempfile.mkdtemp(prefix="pushflow-bench-")
        self.env = dict(os.environ, PORT=str(self.port), PUSHFLOW_VAR_DIR=self.var, DJANGO_SETTINGS_MODULE=settings,
                        PUSHFLOW_ADMIN_USER=ADMIN[0], PUSHFLOW_ADMIN_PASSWORD=ADMIN[1], **env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(os.path.join(self.var, "run.log"), "wb")
        self.proc = subprocess.Popen([PYTHON, "-m", "config.launcher"], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("Pushflow did not become healthy; see " + os.path.join(self.var, "run.log"))
        self.token = self.call("POST", "/api/v1/token", {"login": ADMIN[0], "password": ADMIN[1]}, auth=False)["token"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.var, ignore_errors=True)

    def call(self, method: str, path: str, body=None, auth: bool = True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def create(self, resource: str, obj: dict) -> dict:
        return self.call("POST", f"/api/v1/{resource}/", obj)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by this server's web and worker processes.

        On a shared machine wall-clock throughput moves with whatever else runs; the CPU
        a request costs the server does not, so the benchmarks report both."""
        return process_cpu_seconds(self.proc.pid)

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Rows of a read-only query on this server's database (figures the API would page through slowly)."""
        url = self.env.get("DATABASE_URL", "")
        if url.startswith("postgresql"):
            import psycopg

            with psycopg.connect(url) as conn:
                return conn.execute(query.replace("?", "%s"), params).fetchall()
        import sqlite3

        with sqlite3.connect(os.path.join(self.var, "pushflow.sqlite3"), timeout=30) as conn:
            return conn.execute(query, params).fetchall()

    def now(self) -> str:
        """The database's clock as the messages' received_at is written (UTC)."""
        from datetime import UTC, datetime

        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def wait_idle(self, listener_id: int, timeout: float = 300) -> None:
        """Wait until no message of the listener is queued or running."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            busy = self.sql("SELECT COUNT(*) FROM listeners_message WHERE listener_id = ? AND status IN ('queued', 'running')",
                            (listener_id,))[0][0]
            if not busy:
                return
            time.sleep(0.5)
        raise SystemExit(f"messages still queued or running after {timeout}s")

    def run_delays(self, since: str) -> list[tuple[float, float]]:
        """(ms from received to run started, ms to run finished) of every message received after `since`."""
        rows = self.sql("SELECT m.received_at, r.started_at, r.finished_at FROM listeners_message m "
                        "JOIN flows_flowrun r ON r.message_id = m.id WHERE m.received_at > ? AND r.finished_at IS NOT NULL",
                        (since,))
        from datetime import datetime

        def at(value):
            if isinstance(value, str):
                value = datetime.fromisoformat(value.replace(" ", "T"))
            return value.replace(tzinfo=None) if value.tzinfo is None else value

        out = []
        for received, started, finished in rows:
            r = at(received)
            out.append(((at(started) - r).total_seconds() * 1000, (at(finished) - r).total_seconds() * 1000))
        return out

    def message_count(self, listener_id: int, status: str = "") -> int:
        query = f"listener={listener_id}&limit=1" + (f"&status={status}" if status else "")
        return self.call("GET", f"/api/v1/messages/?{query}")["count"]


@contextmanager
def running(env: dict):
    server = Server(env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def stock_django(server: Server, workers: int = 2, threads: int = 16):
    """The same Django project served the stock way, by gunicorn's gthread workers (Pushflow's
    web server before it moved to uvicorn), on the running server's database and settings:
    its base URL. The reference for "faster than a stock Django view", beside the bare view
    on Pushflow's own server."""
    port = free_port()
    log = open(os.path.join(server.var, "gunicorn.log"), "wb")
    proc = subprocess.Popen([os.path.join(os.path.dirname(PYTHON), "gunicorn"), "config.wsgi:application",
                             "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", str(workers),
                             "--threads", str(threads), "--log-level", "warning"],
                            cwd=ROOT, env=dict(server.env, PORT=str(port)), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/bench/bare", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit("gunicorn did not start; see " + log.name) from None
                time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.body = [[%(body)s]]
done = function(summary, latency, requests)
  io.write(string.format("PF_RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def wrk(url: str, token: str, body: str, connections: int, seconds: int, delay_ms: int = 0) -> dict:
    """Run wrk -t2 against url; returns req/s, p50/p99 (ms), non-2xx and socket errors.
    `delay_ms`: each connection waits this long between requests (a paced load, not a flood)."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"token": token, "body": body})
        if delay_ms:
            script.write(f"delay = function() return {int(delay_ms)} end\n")
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script.name, url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"PF_RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    requests, non2xx, socket_errors, p50, p99, duration_us = (int(x) for x in match.groups())
    return {
        "requests": requests, "ok": requests - non2xx, "non2xx": non2xx, "socket_errors": socket_errors,
        "rps": requests / (duration_us / 1e6), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
    }


def payload_1kb() -> str:
    body = {"resourceType": "Observation", "id": "obs-1", "status": "final", "subject": {"reference": "Patient/42"},
            "code": {"text": "Glucose"}, "valueQuantity": {"value": 5.4, "unit": "mmol/L"}}
    body["note"] = "x" * (1024 - len(json.dumps(body)) - 12)
    return json.dumps(body)


def process_cpu_seconds(root_pid: int) -> dict[str, float]:
    """CPU seconds of the live processes below `root_pid`, by kind: web (uvicorn and its worker
    processes, started by multiprocessing; or gunicorn) and worker (celery worker)."""
    parents, commands = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                commands[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    totals = {"web": 0.0, "worker": 0.0}
    for pid, (_, cpu) in parents.items():
        ancestor = pid
        while ancestor in parents and ancestor != root_pid:
            ancestor = parents[ancestor][0]
        if ancestor != root_pid:
            continue
        command = commands.get(pid, "")
        if "uvicorn" in command or "multiprocessing" in command or "gunicorn" in command:
            totals["web"] += cpu
        elif "celery" in command and " worker" in command:
            totals["worker"] += cpu
    return totals
