"""Scale-out and the store going away, on PostgreSQL + Redis with real processes: two workers
share one stream of 2,000 messages with none run twice or skipped; while PostgreSQL is stopped
the listener answers 503 (never a 2xx), and every message accepted before or after runs."""
from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.process import Pushflow, create_postgres_database, drop_postgres_database

from .test_worker_and_broker_faults import make_flow
from .test_worker_killed_mid_burst import FAST_RECOVERY, count

pytestmark = pytest.mark.e2e
BURST = 2000
REDIS_DB = "9"


def pg_cluster() -> list[str]:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


@pytest.fixture
def installation(tmp_path):
    database = create_postgres_database()
    subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)
    app = Pushflow(tmp_path, {**FAST_RECOVERY, "DATABASE_URL": database, "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}"})
    try:
        yield app
    finally:
        app.stop()
        drop_postgres_database(database)


def test_two_workers_share_a_stream_with_none_run_twice(installation):
    app = installation
    app.start("web,scheduler")
    make_flow(app, "shared")
    listener = app.request("GET", "/api/v1/listeners/?limit=1")[1]["results"][0]["id"]
    flow = app.request("GET", "/api/v1/flows/?limit=1")[1]["results"][0]["id"]
    app.start("worker")
    app.start("worker")  # a second worker process, as on a second machine

    def push(i: int) -> int:
        return app.request("POST", "/listen/shared", {"id": i})[0]

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(push, range(BURST))) == {202}
    deadline = time.time() + 180
    while count(app, f"messages/?listener={listener}&status=received,queued,running") and time.time() < deadline:
        time.sleep(1)
    assert count(app, f"messages/?listener={listener}&status=succeeded") == BURST
    assert count(app, f"runs/?flow={flow}") == BURST  # each message claimed by exactly one worker


def test_while_postgresql_is_down_the_listener_answers_503_never_2xx(installation):
    app = installation
    app.start()
    make_flow(app, "store")
    listener = app.request("GET", "/api/v1/listeners/?limit=1")[1]["results"][0]["id"]
    before = [app.request("POST", "/listen/store", {"id": i})[1]["message_id"] for i in range(20)]
    subprocess.run([*pg_cluster(), "stop", "-m", "fast"], check=True, capture_output=True)
    try:
        statuses = [app.request("POST", "/listen/store", {"id": 100 + i}, timeout=30)[0] for i in range(20)]
    finally:
        subprocess.run([*pg_cluster(), "start"], check=True, capture_output=True)
        for _ in range(60):
            if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0:
                break
            time.sleep(0.5)
    assert set(statuses) == {503}, statuses
    after = []
    deadline = time.time() + 60
    while len(after) < 20 and time.time() < deadline:  # the web reconnects on its own
        status, body = app.request("POST", "/listen/store", {"id": 200 + len(after)})
        if status == 202:
            after.append(body["message_id"])
        else:
            time.sleep(0.5)
    assert len(after) == 20
    messages = app.wait_final(before + after, timeout=120)
    assert {m["status"] for m in messages.values()} == {"succeeded"}
    assert count(app, f"messages/?listener={listener}&status=received,queued,running,succeeded,failed") == 40
