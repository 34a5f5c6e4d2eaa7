"""Nothing accepted is lost: payloads taken while no worker runs, or while the broker is
unreachable, are run once the worker or the broker is back."""
from __future__ import annotations

import subprocess
import tempfile
import time

import pytest

from tests.e2e.process import Pushflow, create_postgres_database, drop_postgres_database, free_port

pytestmark = pytest.mark.e2e


def make_flow(app: Pushflow, path: str) -> None:
    out = tempfile.mkdtemp(prefix="pushflow-fault-out-")
    fj = app.create("formats", {"name": "json", "kind": "json", "options": {}})
    conn = app.create("connections", {"name": "out", "kind": "folder", "options": {"path": out}})
    listener = app.create("listeners", {"name": path, "path": path, "mode": "async", "auth": "token"})
    app.create("flows", {"name": path, "listener": listener["id"], "source_format": fj["id"], "trigger": "event", "enabled": True,
                         "mapping": {"fields": [{"target": "id", "source": "id"}]},
                         "destination": {"connection": conn["id"], "format": fj["id"], "options": {"file_name": "{message_id}.json"}}})


def push(app: Pushflow, path: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        status, body = app.request("POST", f"/listen/{path}", {"id": i})
        assert status == 202, body
        ids.append(body["message_id"])
    return ids


@pytest.mark.parametrize("config", ["embedded", "postgres+redis"])
def test_payloads_accepted_while_no_worker_runs_are_processed_when_one_starts(tmp_path, config):
    env, database = {}, None
    if config == "postgres+redis":
        database = create_postgres_database()
        subprocess.run(["redis-cli", "-n", "12", "flushdb"], check=True, capture_output=True)
        env = {"DATABASE_URL": database, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12"}
    app = Pushflow(tmp_path, env)
    try:
        app.start("web")
        make_flow(app, "no-worker")
        ids = push(app, "no-worker", 10)
        time.sleep(1)
        assert {app.message(mid)["status"] for mid in ids} == {"queued"}
        app.start("worker")
        messages = app.wait_final(ids, timeout=60)
        assert {m["status"] for m in messages.values()} == {"succeeded"}
        assert all(len(m["runs"]) == 1 for m in messages.values())
    finally:
        app.stop()
        if database:
            drop_postgres_database(database)


def test_payload_accepted_while_the_broker_is_unreachable_is_enqueued_by_the_sweeper(tmp_path):
    database = create_postgres_database()
    subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=True, capture_output=True)
    app = Pushflow(tmp_path, {"DATABASE_URL": database, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
                              "PUSHFLOW_SWEEP_SECONDS": "1", "PUSHFLOW_REQUEUE_AFTER_SECONDS": "2"})
    closed_port = free_port()  # nothing listens there: every publish fails at once
    try:
        app.start("web", env={"CELERY_BROKER_URL": f"redis://127.0.0.1:{closed_port}/0"}, wait_healthy=False)
        status, health = app.request("GET", "/healthz", auth=False)
        assert status == 503 and health["broker"].startswith("unreachable")
        make_flow(app, "no-broker")
        started = time.time()
        ids = push(app, "no-broker", 5)
        assert time.time() - started < 15, "a broken broker must not hold up the 202"
        assert {app.message(mid)["status"] for mid in ids} == {"queued"}
        app.start("worker,scheduler")  # these reach the real broker; the sweeper publishes what is queued
        messages = app.wait_final(ids, timeout=60)
        assert {m["status"] for m in messages.values()} == {"succeeded"}
    finally:
        app.stop()
        drop_postgres_database(database)


def test_rabbitmq_as_the_broker(tmp_path):
    database = create_postgres_database()
    app = Pushflow(tmp_path, {"DATABASE_URL": database, "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"})
    try:
        app.start()
        make_flow(app, "rabbit")
        ids = push(app, "rabbit", 10)
        messages = app.wait_final(ids, timeout=60)
        assert {m["status"] for m in messages.values()} == {"succeeded"}
    finally:
        app.stop()
        drop_postgres_database(database)
