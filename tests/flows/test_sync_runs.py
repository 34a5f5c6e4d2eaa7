"""The sync runner (flows.services.start_sync_run / run_sync): what a sync request writes, and when."""
import base64
import json
from concurrent.futures import Future

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import flows.services
from flows.models import FlowRun
from listeners.models import Message
from tests.conftest import PASSWORD

# Committed data: the store and the finish are real transactions, as in production.
pytestmark = pytest.mark.django_db(transaction=True)
PATIENT = {"id": 7, "name": {"family": "Doe"}}


class InlinePool:
    """Runs the sync flow on the calling thread, so one connection sees every statement."""

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future


def written(sql: str) -> list[str]:
    """`INSERT table` / `UPDATE table` for each write in a statement (several in a WITH), in order."""
    words = sql.replace('"', "").replace("(", " ( ").replace(")", " ) ").split()
    found = []
    for n, word in enumerate(words[:-2]):
        if word.upper() == "INSERT" and words[n + 1].upper() == "INTO":
            found.append(f"INSERT {words[n + 2]}")
        elif word.upper() == "UPDATE" and (n == 0 or words[n - 1] in ("(", ")")):
            found.append(f"UPDATE {words[n + 1]}")
    return found


def push(client, user, body=PATIENT, **headers):
    auth = "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    return client.post("/listen/echo", json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=auth,
                       **headers)


def test_a_sync_request_writes_four_rows_in_two_commits_and_reads_nothing_back(client, user, sync_flow, monkeypatch):
    monkeypatch.setattr(flows.services, "_sync_pool", InlinePool())
    push(client, user)  # the listener and the user are cached, the mapping compiled
    with CaptureQueriesContext(connection) as queries:
        response = push(client, user, {"id": 8, "name": {"family": "Roe"}})
    assert response.status_code == 200 and response.json() == {"full": "Roe"}
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    writes = [written(q["sql"]) for q in queries.captured_queries if written(q["sql"])]
    assert [write for statement in writes for write in statement] == [
        "INSERT listeners_message", "INSERT flows_flowrun",  # stored together, before the flow runs
        "UPDATE flows_flowrun", "UPDATE listeners_message",  # ended together
    ]
    if connection.vendor == "postgresql":  # each pair one statement, committing by itself: two round trips
        assert len(writes) == 2 and not [s for s in statements if s in ("BEGIN", "COMMIT")]
    else:
        assert statements.count("COMMIT") == 2
    assert not [s for s in statements if "SAVEPOINT" in s]  # the end's transaction is the writer's own
    reads = [q["sql"] for q in queries.captured_queries
             if q["sql"].startswith("SELECT") and ("listeners_message" in q["sql"] or "flows_flow" in q["sql"])]
    assert reads == []  # the rows in hand are not read again


def test_the_message_and_its_run_are_committed_running_before_the_flow_runs(client, user, sync_flow, monkeypatch):
    seen = {}
    real_execute = flows.services.execute

    def looking(flow, data, message_id="", run_id=None, **kwargs):
        # What another connection sees now: both rows committed, the message claimed by this request.
        with connection.cursor() as cursor:
            cursor.execute("SELECT status, attempts, claimed_at IS NOT NULL FROM listeners_message WHERE id = %s",
                           [message_id.replace("-", "") if connection.vendor == "sqlite" else message_id])
            seen["message"] = cursor.fetchone()
        seen["run"] = FlowRun.objects.filter(pk=run_id).values_list("status", "message_id").first()
        return real_execute(flow, data, message_id=message_id, run_id=run_id, **kwargs)

    monkeypatch.setattr(flows.services, "execute", looking)
    response = push(client, user)
    assert response.status_code == 200
    message = Message.objects.get(pk=response["X-Message-Id"])
    assert seen["message"] == ("running", 1, 1)
    assert seen["run"] == ("running", message.pk)
    run = message.runs.get()
    assert (run.status, run.records_in, run.records_out, run.attempt) == ("succeeded", 1, 1, 1)
    assert run.finished_at is not None and run.log
    assert (message.status, message.attempts, message.response_status) == ("succeeded", 1, 200)
    assert message.finished_at == run.finished_at
    assert json.loads(bytes(message.response_body)) == {"full": "Doe"}


def test_a_failed_sync_run_ends_the_run_and_the_message_with_the_reason(client, user, sync_flow):
    response = client.post("/listen/echo", b"{not json", content_type="application/json",
                           HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode())
    assert response.status_code == 422
    message = Message.objects.get(pk=response["X-Message-Id"])
    run = message.runs.get()
    assert run.status == "failed" and "malformed JSON" in run.error
    assert (message.status, message.response_status) == ("failed", 422)
    assert "malformed JSON" in message.error


def test_a_sync_listener_without_an_enabled_flow_keeps_the_message_and_answers_500(client, user, sync_flow):
    sync_flow.enabled = False
    sync_flow.save()
    response = push(client, user)
    assert response.status_code == 500 and "no enabled flow" in response.json()["error"]
    message = Message.objects.get(pk=response["X-Message-Id"])
    assert message.status == Message.Status.RECEIVED and not message.runs.exists()


def test_a_sync_run_on_a_capped_flow_wakes_the_message_waiting_behind_it(client, user, sync_flow, monkeypatch):
    sync_flow.concurrency = 1
    sync_flow.save()
    waiting = Message.objects.create(listener=sync_flow.listener, flow=sync_flow, owner=user, method="POST",
                                     path="/listen/echo", status=Message.Status.QUEUED, body_text=json.dumps(PATIENT))
    published = []
    monkeypatch.setattr(flows.services, "publish_many", lambda ids: published.append(ids))
    response = push(client, user)
    assert response.status_code == 200
    assert published == [[str(waiting.pk)]]


def test_a_sync_run_on_an_uncapped_flow_publishes_nothing(client, user, sync_flow, monkeypatch):
    Message.objects.create(listener=sync_flow.listener, flow=sync_flow, owner=user, method="POST",
                           path="/listen/echo", status=Message.Status.QUEUED, body_text=json.dumps(PATIENT))
    published = []
    monkeypatch.setattr(flows.services, "publish_many", lambda ids: published.append(ids))
    assert push(client, user).status_code == 200
    assert published == []


def test_a_repeated_idempotency_key_is_answered_from_the_kept_response_without_a_second_run(client, user, sync_flow):
    first = push(client, user, HTTP_IDEMPOTENCY_KEY="order-1")
    again = push(client, user, {"id": 9, "name": {"family": "Other"}}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {"full": "Doe"}
    assert again["X-Message-Id"] == first["X-Message-Id"] and again["Idempotent-Replayed"] == "true"
    assert FlowRun.objects.count() == 1 and Message.objects.count() == 1


def test_concurrent_sync_requests_through_the_group_writer_each_get_their_own_answer(user, sync_flow, settings):
    import threading

    from django.db import close_old_connections
    from django.test import Client

    settings.PUSHFLOW_GROUP_COMMIT = True
    answers = {}

    def caller(i):
        try:
            response = push(Client(), user, {"name": {"family": f"F{i}"}})
            answers[i] = (response.status_code, response.json(), response["X-Message-Id"])
        finally:
            close_old_connections()

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == list(range(6))
    for i, (status, body, message_id) in answers.items():
        assert (status, body) == (200, {"full": f"F{i}"})
        message = Message.objects.get(pk=message_id)
        assert (message.status, json.loads(bytes(message.response_body))) == ("succeeded", {"full": f"F{i}"})
        assert message.runs.get().status == "succeeded"
