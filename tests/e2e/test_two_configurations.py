"""The walking skeleton end to end, on the embedded default (SQLite + embedded broker) and on
PostgreSQL + Redis, each with real web, worker and scheduler processes."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .process import ADMIN, Pushflow, create_postgres_database, drop_postgres_database, status_of

pytestmark = pytest.mark.e2e
N_PAYLOADS = 200
REDIS_DB = "11"


@pytest.fixture(scope="module", params=["embedded", "postgres+redis"])
def pushflow(request, tmp_path_factory):
    env, database = {}, None
    if request.param == "postgres+redis":
        database = create_postgres_database()
        subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)
        env = {"DATABASE_URL": database, "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}"}
    # A short body read timeout, for the stalled-body test.
    env["PUSHFLOW_BODY_READ_TIMEOUT_SECONDS"] = "2"
    app = Pushflow(tmp_path_factory.mktemp(request.param.replace("+", "-")), env)
    try:
        app.start()
        yield app
    finally:
        app.stop()
        if database:
            drop_postgres_database(database)


@pytest.fixture(scope="module")
def patients(pushflow):
    """An async listener whose flow writes one CSV per message into a folder."""
    out = Path(tempfile.mkdtemp(prefix="pushflow-e2e-out-"))
    fj = pushflow.create("formats", {"name": "json", "kind": "json", "options": {}})
    fc = pushflow.create("formats", {"name": "csv", "kind": "csv", "options": {"delimiter": ",", "header": True}})
    conn = pushflow.create("connections", {"name": "out", "kind": "folder", "options": {"path": str(out)}})
    listener = pushflow.create("listeners", {"name": "patients", "path": "e2e/patients", "mode": "async", "auth": "token",
                                             "max_body_bytes": 4096})
    pushflow.create("flows", {
        "name": "patients to csv", "listener": listener["id"], "source_format": fj["id"], "trigger": "event",
        "enabled": True, "destination": {"connection": conn["id"], "format": fc["id"], "options": {"file_name": "{message_id}.csv"}},
        "mapping": {"fields": [{"target": "id", "source": "id", "type": "integer"},
                               {"target": "family", "source": "name.family"},
                               {"target": "given", "source": "name.given[0]"}]},
    })
    return {"out": out, "listener": listener, "json": fj}


def test_health_is_ok(pushflow):
    status, body = pushflow.request("GET", "/healthz", auth=False)
    assert status == 200 and body == {"status": "ok", "database": "ok", "broker": "ok"}


def test_every_accepted_payload_runs_and_writes_its_own_csv(pushflow, patients):
    def push(i):
        body = {"id": i, "name": {"family": f"Doe{i}", "given": [f"Jane{i}"]}, "pad": "x" * 600}
        return i, *pushflow.request("POST", "/listen/e2e/patients", body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(push, range(N_PAYLOADS)))
    assert [status for _, status, _ in answers] == [202] * N_PAYLOADS
    ids = {i: body["message_id"] for i, _, body in answers}
    messages = pushflow.wait_final(ids.values(), timeout=150)
    assert {m["status"] for m in messages.values()} == {"succeeded"}
    files = {p.name for p in patients["out"].iterdir()}
    assert files == {f"{mid}.csv" for mid in ids.values()}
    for i in (0, N_PAYLOADS // 2, N_PAYLOADS - 1):
        rows = list(csv.DictReader(io.StringIO((patients["out"] / f"{ids[i]}.csv").read_text())))
        assert rows == [{"id": str(i), "family": f"Doe{i}", "given": f"Jane{i}"}]
    one = messages[ids[0]]
    assert len(one["runs"]) == 1 and one["runs"][0]["records_out"] == 1


def test_sync_listener_answers_the_mapped_json(pushflow, patients):
    listener = pushflow.create("listeners", {"name": "echo", "path": "e2e/echo", "mode": "sync", "auth": "basic"})
    pushflow.create("flows", {"name": "echo", "listener": listener["id"], "source_format": patients["json"]["id"],
                              "trigger": "event", "enabled": True,
                              "mapping": {"fields": [{"target": "full", "source": "name.family"}]},
                              "destination": {"connection": None, "format": patients["json"]["id"], "options": {}}})
    status, body = pushflow.request("POST", "/listen/e2e/echo", {"name": {"family": "Smith"}}, auth=ADMIN)
    assert (status, body) == (200, {"full": "Smith"})
    status, body = pushflow.request("POST", "/listen/e2e/echo", b"{oops", auth=ADMIN)
    assert status == 422 and "malformed JSON" in body["error"]
    status, _ = pushflow.request("POST", "/listen/e2e/echo", {"a": 1}, auth=False)
    assert status == 401


def _head(pushflow, extra: str) -> bytes:
    return (f"POST /listen/e2e/patients HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {pushflow.token}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


def test_chunked_body_without_content_length_arrives_whole(pushflow, patients):
    body = json.dumps({"id": 9001, "name": {"family": "Chunked", "given": ["Carl"]}}).encode()
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:10], body[10:25], body[25:]))
    response = pushflow.raw(_head(pushflow, "Transfer-Encoding: chunked\r\n") + chunks + b"0\r\n\r\n")
    assert status_of(response) == 202, response
    message_id = json.loads(response.split(b"\r\n\r\n", 1)[1])["message_id"]
    status, stored = pushflow.request("GET", f"/api/v1/messages/{message_id}/body")
    assert status == 200 and stored == json.loads(body)
    assert pushflow.wait_final([message_id])[message_id]["status"] == "succeeded"


def test_content_length_shorter_than_the_body_is_400_and_nothing_is_accepted(pushflow, patients):
    body = b'{"id": 1, "name": {"family": "Short"}}'
    _, before = pushflow.request("GET", "/api/v1/messages/?status=queued,running,succeeded,failed&limit=1")
    response = pushflow.raw(_head(pushflow, "Content-Length: 9\r\n") + body)
    assert status_of(response) == 400, response
    assert b"more bytes arrived than the Content-Length" in response
    _, after = pushflow.request("GET", "/api/v1/messages/?status=queued,running,succeeded,failed&limit=1")
    assert after["count"] == before["count"]


def test_content_length_longer_than_the_body_is_400(pushflow, patients):
    response = pushflow.raw(_head(pushflow, "Content-Length: 500\r\n") + b'{"id": 2}', half_close=True)
    assert status_of(response) == 400, response
    assert b"ended after 9 bytes" in response


def test_declared_body_over_the_limit_is_413_without_reading_it(pushflow, patients):
    # The listener accepts 4096 bytes; the body is never sent, so an answer proves nothing was waited for.
    response = pushflow.raw(_head(pushflow, "Content-Length: 10000000\r\n"), timeout=10)
    assert status_of(response) == 413, response


def _accepted_count(pushflow) -> int:
    _, page = pushflow.request("GET", "/api/v1/messages/?status=queued,running,succeeded,failed&limit=1")
    return page["count"]


def test_a_body_that_stops_arriving_is_400_after_the_read_timeout_and_nothing_is_kept(pushflow, patients):
    before = _accepted_count(pushflow)
    started = time.monotonic()
    response = pushflow.raw(_head(pushflow, "Content-Length: 100\r\n") + b'{"id": 3', timeout=15)
    assert status_of(response) == 400, response
    assert b"stopped arriving" in response and 1.5 < time.monotonic() - started < 12
    assert _accepted_count(pushflow) == before


def test_a_request_head_that_stops_arriving_is_408_after_the_read_timeout(pushflow):
    started = time.monotonic()
    response = pushflow.raw(b"POST /listen/e2e/patients HTTP/1.1\r\nHost: 127.0.0.1\r\n", timeout=15, until_closed=True)
    assert status_of(response) == 408 and b"stopped arriving" in response, response
    assert 1.5 < time.monotonic() - started < 12


def test_a_chunked_body_cut_short_by_the_client_is_400_and_nothing_is_kept(pushflow, patients):
    before = _accepted_count(pushflow)
    response = pushflow.raw(_head(pushflow, "Transfer-Encoding: chunked\r\n") + b"9\r\n{\"id\": 77\r\n", half_close=True)
    assert status_of(response) == 400, response
    assert b"ended before the last chunk" in response
    assert _accepted_count(pushflow) == before


def test_a_client_that_half_closes_after_its_request_still_gets_its_answer(pushflow, patients):
    body = json.dumps({"id": 9100, "name": {"family": "Half", "given": ["Hal"]}}).encode()
    response = pushflow.raw(_head(pushflow, f"Content-Length: {len(body)}\r\n") + body, half_close=True)
    assert status_of(response) == 202, response
    message_id = json.loads(response.split(b"\r\n\r\n", 1)[1])["message_id"]
    assert pushflow.wait_final([message_id])[message_id]["status"] == "succeeded"


def test_pipelined_requests_on_one_connection_are_each_answered_and_kept(pushflow, patients):
    bodies = [json.dumps({"id": 9200 + i, "name": {"family": f"Pipe{i}", "given": ["P"]}}).encode() for i in range(2)]
    data = (_head(pushflow, f"Content-Length: {len(bodies[0])}\r\n") + bodies[0]
            + _head(pushflow, f"Content-Length: {len(bodies[1])}\r\nConnection: close\r\n") + bodies[1])
    response = pushflow.raw(data, until_closed=True)
    assert response.count(b"HTTP/1.1 202 ") == 2, response
    ids = re.findall(rb'"message_id":"([0-9a-f-]+)"', response)
    assert len(set(ids)) == 2
    finished = pushflow.wait_final([i.decode() for i in ids])
    assert {m["status"] for m in finished.values()} == {"succeeded"}


def test_a_request_head_past_its_bound_is_431_and_the_server_stays_up(pushflow, patients):
    # Just past the bound, so the server has read every byte sent when it answers and closes.
    response = pushflow.raw(_head(pushflow, "X-Padding: " + "a" * 1024 * 1024 + "\r\n"), until_closed=True)
    assert status_of(response) == 431 and b"headers are too large" in response, response[:200]
    status, _ = pushflow.request("GET", "/healthz", auth=False)
    assert status == 200


def test_a_forwarded_for_header_does_not_pass_an_address_allow_list(pushflow, patients):
    pushflow.create("listeners", {"name": "allow-listed", "path": "e2e/allow-listed", "mode": "async", "auth": "token",
                                  "ip_allowlist": ["10.9.8.7/32"]})
    status, body = pushflow.request("POST", "/listen/e2e/allow-listed", {"id": 1}, headers={"X-Forwarded-For": "10.9.8.7"})
    assert status == 403 and "127.0.0.1" in body["error"]


def test_a_large_static_file_arrives_whole(pushflow):
    import django

    expected = (Path(django.__file__).parent / "contrib/admin/static/admin/js/vendor/jquery/jquery.min.js").read_bytes()
    with urllib.request.urlopen(pushflow.base + "/static/admin/js/vendor/jquery/jquery.min.js", timeout=30) as response:
        assert response.status == 200 and response.read() == expected


def test_the_scheduler_runs_an_interval_flow_that_reads_a_folder(pushflow, patients):
    import time

    inbox, out = Path(tempfile.mkdtemp(prefix="pushflow-e2e-in-")), Path(tempfile.mkdtemp(prefix="pushflow-e2e-out-"))
    (inbox / "order-1.json").write_text(json.dumps({"id": 77, "name": {"family": "Timed", "given": ["Tia"]}}))
    source = pushflow.create("connections", {"name": "inbox", "kind": "folder", "options": {"path": str(inbox)}})
    target = pushflow.create("connections", {"name": "timed-out", "kind": "folder", "options": {"path": str(out)}})
    fc = pushflow.create("formats", {"name": "csv2", "kind": "csv", "options": {"header": True}})
    pushflow.create("flows", {
        "name": "poll inbox", "source_connection": source["id"], "source_format": patients["json"]["id"],
        "source_options": {"pattern": "*.json"}, "trigger": "interval", "schedule": 1, "enabled": True,
        "destination": {"connection": target["id"], "format": fc["id"], "options": {"file_name": "{message_id}.csv"}},
        "mapping": {"fields": [{"target": "id", "source": "id"}, {"target": "family", "source": "name.family"}]},
    })
    deadline = time.time() + 60  # the database scheduler notices new tasks within its sync interval
    while time.time() < deadline and not list(out.iterdir()):
        time.sleep(0.5)
    written = list(out.iterdir())
    assert len(written) == 1, "the scheduler did not run the interval flow"
    assert list(csv.DictReader(io.StringIO(written[0].read_text()))) == [{"id": "77", "family": "Timed"}]
    assert (inbox / "processed" / "order-1.json").exists() and not (inbox / "order-1.json").exists()
