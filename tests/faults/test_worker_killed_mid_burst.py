"""A burst of 2,000 payloads while the worker is killed with SIGKILL half way: every accepted
message reaches a final state, none is lost, and only the ones the dead worker had in hand run
a second time. On the embedded default and on PostgreSQL + Redis."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.process import Pushflow, create_postgres_database, drop_postgres_database

from .test_worker_and_broker_faults import make_flow

pytestmark = pytest.mark.e2e
BURST = 2000
# Quick sweeps and a short lease, so the test sees recovery in seconds rather than minutes.
FAST_RECOVERY = {"PUSHFLOW_SWEEP_SECONDS": "1", "PUSHFLOW_REQUEUE_AFTER_SECONDS": "3", "PUSHFLOW_RUN_LEASE_SECONDS": "8"}


def celery_workers_of(app: Pushflow) -> list[int]:
    """Pids of the celery worker main processes started for this installation."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"celery" in cmdline and b" worker" in cmdline and f"PUSHFLOW_VAR_DIR={app.var_dir}".encode() in environ:
            pids.append(int(entry.name))
    return pids


def count(app: Pushflow, query: str) -> int:
    status, body = app.request("GET", f"/api/v1/{query}&limit=1")
    assert status == 200, body
    return body["count"]


@pytest.mark.parametrize("config", ["embedded", "postgres+redis"])
def test_a_worker_killed_mid_burst_loses_nothing(tmp_path, config):
    env, database = dict(FAST_RECOVERY), None
    if config == "postgres+redis":
        database = create_postgres_database()
        subprocess.run(["redis-cli", "-n", "6", "flushdb"], check=True, capture_output=True)
        env.update(DATABASE_URL=database, CELERY_BROKER_URL="redis://127.0.0.1:6379/6")
    app = Pushflow(tmp_path, env)
    try:
        app.start("web,scheduler")
        make_flow(app, "burst")
        listener = app.request("GET", "/api/v1/listeners/?limit=1")[1]["results"][0]["id"]
        flow = app.request("GET", "/api/v1/flows/?limit=1")[1]["results"][0]["id"]
        app.start("worker")

        def push(i: int) -> str:
            status, body = app.request("POST", "/listen/burst", {"id": i})
            assert status == 202, body
            return body["message_id"]

        with ThreadPoolExecutor(8) as pool:
            accepted = pool.map(push, range(BURST))
            deadline = time.time() + 60
            while count(app, f"runs/?flow={flow}") < BURST // 4 and time.time() < deadline:
                time.sleep(0.2)
            at_kill = count(app, f"runs/?flow={flow}")
            killed = celery_workers_of(app)
            assert killed, "no worker process found to kill"
            for pid in killed:
                os.kill(pid, signal.SIGKILL)  # the worker and each of its pool processes, mid-run
            accepted = list(accepted)
        assert len(set(accepted)) == BURST
        app.start("worker")  # a new worker; the sweeper hands it what the dead one held
        deadline = time.time() + 180
        while count(app, f"messages/?listener={listener}&status=received,queued,running") and time.time() < deadline:
            time.sleep(1)
        assert count(app, f"messages/?listener={listener}&status=received,queued,running") == 0, "messages left unfinished"
        assert count(app, f"messages/?listener={listener}") == BURST  # every 2xx has its message
        assert count(app, f"messages/?listener={listener}&status=succeeded") == BURST
        runs = count(app, f"runs/?flow={flow}")
        # Only a run the dead worker had started may have happened twice (2 pool processes, one each, and
        # the task each had prefetched): far fewer than the burst.
        assert BURST <= runs <= BURST + 8, runs
        assert at_kill < BURST, "the worker was killed after the burst was done: nothing was tested"
        print(f"\n[{config}] {BURST} accepted, worker killed after {at_kill} runs, {runs - BURST} run twice, none lost")
    finally:
        app.stop()
        if database:
            drop_postgres_database(database)
