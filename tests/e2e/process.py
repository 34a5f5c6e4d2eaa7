"""Real Pushflow processes for end-to-end tests: started with the launcher as `make run` does,
driven over HTTP on loopback, stopped with SIGINT like a Ctrl-C."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("e2e-admin", "e2e-Pass-2026!")
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FINAL = ("succeeded", "failed", "rejected", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_postgres_database() -> str:
    """A fresh, empty PostgreSQL database; returns its URL."""
    name = f"pushflow_e2e_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", PG_ADMIN_URL, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    subprocess.run(["psql", PG_ADMIN_URL, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


class Pushflow:
    """One Pushflow installation (a var/ folder and a database), with its processes."""

    def __init__(self, var_dir: Path, env: dict | None = None):
        self.var_dir = Path(var_dir)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PORT": str(self.port), "PUSHFLOW_VAR_DIR": str(self.var_dir),
                    "PUSHFLOW_ADMIN_USER": ADMIN[0], "PUSHFLOW_ADMIN_PASSWORD": ADMIN[1],
                    "DJANGO_SETTINGS_MODULE": "config.settings", **(env or {})}
        self.env.pop("PUSHFLOW_TEST_DATABASE", None)
        self.launchers: list[subprocess.Popen] = []
        self.token = ""

    def start(self, processes: str = "web,worker,scheduler", env: dict | None = None, wait_healthy: bool = True):
        """Start a launcher with these processes; waits for the web answer when it starts web."""
        log = open(self.var_dir / f"launcher-{len(self.launchers)}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "config.launcher"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**self.env, "PUSHFLOW_PROCESSES": processes, **(env or {})}, start_new_session=True)
        self.launchers.append(proc)
        if "web" in processes:
            self._wait_for_web(proc, wait_healthy)
            if not self.token:
                status, body = self.request("POST", "/api/v1/token", {"login": ADMIN[0], "password": ADMIN[1]}, auth=False)
                assert status == 200, body
                self.token = body["token"]
        return proc

    def _wait_for_web(self, proc: subprocess.Popen, healthy: bool) -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"launcher exited with {proc.returncode}: {self.logs()[-3000:]}")
            try:
                status, _ = self.request("GET", "/healthz", auth=False, timeout=5)
                if status == 200 or not healthy:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"Pushflow did not answer /healthz in time: {self.logs()[-3000:]}")

    def stop_launcher(self, proc: subprocess.Popen) -> int:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def stop(self) -> None:
        for proc in self.launchers:
            self.stop_launcher(proc)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.var_dir.glob("launcher-*.log")))

    # --- HTTP ---
    def request(self, method: str, path: str, body=None, headers: dict | None = None, auth=True, timeout: float = 30):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if auth is True:
            headers["Authorization"] = f"Bearer {self.token}"
        elif isinstance(auth, tuple):
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, _json(response.read(), response.headers)
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read(), error.headers)

    def create(self, resource: str, obj: dict) -> dict:
        status, body = self.request("POST", f"/api/v1/{resource}/", obj)
        assert status == 201, (resource, status, body)
        return body

    def message(self, message_id: str) -> dict:
        status, body = self.request("GET", f"/api/v1/messages/{message_id}/")
        assert status == 200, body
        return body

    def wait_final(self, message_ids, timeout: float = 90) -> dict:
        """Wait until every message is in a final state; returns {id: message}."""
        pending, done = set(message_ids), {}
        deadline = time.time() + timeout
        while pending and time.time() < deadline:
            for message_id in list(pending):
                message = self.message(message_id)
                if message["status"] in FINAL:
                    done[message_id] = message
                    pending.discard(message_id)
            if pending:
                time.sleep(0.3)
        assert not pending, f"{len(pending)} messages not final after {timeout}s, e.g. {self.message(next(iter(pending)))}"
        return done

    def raw(self, data: bytes, half_close: bool = False, timeout: float = 20, until_closed: bool = False) -> bytes:
        """Send raw bytes on one connection and return the first response's bytes (every byte the
        server sent until it closed, with `until_closed`)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                if not until_closed and _complete(b"".join(chunks)):
                    break
            return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _json(payload: bytes, headers):
    try:
        return json.loads(payload)
    except ValueError:
        return payload
