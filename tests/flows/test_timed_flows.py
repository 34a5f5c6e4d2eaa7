"""Timed flows: the beat schedule follows the Flow row; a timed run queues what the listener holds
and reads the source connection (each payload a message, the source let go only once stored)."""
import json

import pytest
from django_celery_beat.models import PeriodicTask

from connections.models import Connection
from flows.models import Flow
from flows.services import run_timed_flow
from listeners.models import Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_schedule_follows_the_flow(api, json_format):
    made = api.post("/api/v1/flows/", {"name": "nightly", "source_format": json_format.pk, "trigger": "cron",
                                       "schedule": "30 2 * * 1-5", "mapping": {"fields": [{"target": "a", "source": "a"}]}},
                    format="json")
    assert made.status_code == 201, made.content
    flow_id = made.json()["id"]
    task = PeriodicTask.objects.get(name=f"pushflow-flow-{flow_id}")
    assert task.task == "flows.run_timed_flow" and json.loads(task.args) == [flow_id]
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "2", "1-5")
    api.patch(f"/api/v1/flows/{flow_id}/", {"trigger": "interval", "schedule": 90}, format="json")
    task = PeriodicTask.objects.get(name=f"pushflow-flow-{flow_id}")
    assert task.crontab is None and task.interval.every == 90
    api.patch(f"/api/v1/flows/{flow_id}/", {"enabled": False}, format="json")
    assert not PeriodicTask.objects.filter(name=f"pushflow-flow-{flow_id}").exists()
    api.patch(f"/api/v1/flows/{flow_id}/", {"enabled": True}, format="json")
    assert PeriodicTask.objects.filter(name=f"pushflow-flow-{flow_id}").exists()
    api.delete(f"/api/v1/flows/{flow_id}/")
    assert not PeriodicTask.objects.filter(name=f"pushflow-flow-{flow_id}").exists()


@pytest.mark.parametrize("trigger, schedule, words", [
    ("cron", "every day", "5 fields"), ("cron", "61 * * * *", "not a valid cron"), ("interval", "soon", "number of seconds"),
    ("interval", 0, "at least 1 second"),
])
def test_a_bad_schedule_is_a_400_naming_it(api, json_format, trigger, schedule, words):
    made = api.post("/api/v1/flows/", {"name": "x", "source_format": json_format.pk, "trigger": trigger, "schedule": schedule,
                                       "mapping": {"fields": [{"target": "a", "source": "a"}]}}, format="json")
    assert made.status_code == 400 and words in made.json()["schedule"][0]


def test_a_timed_listener_keeps_payloads_until_the_timer(client, user, async_flow):
    Flow.objects.filter(pk=async_flow.pk).update(trigger="interval", schedule="60")
    accepted = client.post("/listen/patients", json.dumps({"id": 1, "name": {"family": "Later"}}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    assert accepted.status_code == 202
    message = Message.objects.get(pk=accepted.json()["message_id"])
    assert message.status == "received" and not message.runs.exists()
    assert run_timed_flow(async_flow.pk) == {"queued": 1, "read": 0}
    message.refresh_from_db()
    assert message.status == "succeeded" and message.runs.count() == 1


def test_a_manual_run_reads_a_folder_source_and_moves_what_it_stored(api, user, json_format, csv_format, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    (inbox / "a.json").write_text('{"id": 1}')
    (inbox / "b.json").write_text('{"id": 2}')
    (inbox / "skip.txt").write_text("not me")
    source = Connection.objects.create(owner=user, name="in", kind="folder", options={"path": str(inbox)})
    target = Connection.objects.create(owner=user, name="out", kind="folder", options={"path": str(out)})
    flow = Flow.objects.create(owner=user, name="poll", source_connection=source, source_format=json_format,
                               source_options={"pattern": "*.json"}, trigger="manual",
                               destination_connection=target, destination_format=csv_format,
                               destination_options={"file_name": "{message_id}.csv"},
                               mapping={"fields": [{"target": "id", "source": "id"}]})
    answer = api.post(f"/api/v1/flows/{flow.pk}/run")
    assert answer.status_code == 202 and answer.json() == {"queued": 0, "read": 2}
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["a.json", "b.json"]
    assert (inbox / "skip.txt").exists()
    messages = Message.objects.filter(flow=flow)
    assert {m.status for m in messages} == {"succeeded"} and {m.path for m in messages} == {"a.json", "b.json"}
    assert len(list(out.iterdir())) == 2
    assert api.post(f"/api/v1/flows/{flow.pk}/run").json() == {"queued": 0, "read": 0}  # nothing read twice


def test_a_source_that_cannot_be_read_leaves_a_failed_run(user, json_format, tmp_path):
    source = Connection.objects.create(owner=user, name="gone", kind="folder", options={"path": str(tmp_path / "missing")})
    flow = Flow.objects.create(owner=user, name="poll", source_connection=source, source_format=json_format, trigger="manual",
                               mapping={"fields": [{"target": "id", "source": "id"}]})
    assert run_timed_flow(flow.pk, trigger="manual") == {"queued": 0, "read": 0}
    run = flow.runs.get()
    assert run.status == "failed" and "does not exist" in run.error


def test_a_database_source_reads_only_rows_newer_than_the_last_run(user, json_format, tmp_path):
    import sqlalchemy as sa

    from connections.transports.database import engine_for

    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    engine = engine_for({"url": url}, {})
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE orders (id INTEGER, total NUMERIC, changed TEXT)"))
        db.execute(sa.text("INSERT INTO orders VALUES (1, 10.5, '2026-11-01T10:00'), (2, 7, '2026-11-02T10:00')"))
    source = Connection.objects.create(owner=user, name="erp", kind="database", options={"url": url})
    flow = Flow.objects.create(owner=user, name="orders", source_connection=source, source_format=json_format,
                               trigger="manual", source_options={
                                   "query": "SELECT id, total, changed FROM orders WHERE changed > :since ORDER BY changed",
                                   "watermark": "changed", "start": "1970-01-01"},
                               mapping={"records": "[*]", "fields": [{"target": "id", "source": "id"}]})
    assert run_timed_flow(flow.pk, trigger="manual")["read"] == 1
    first = Message.objects.get(flow=flow)
    assert [row["id"] for row in json.loads(first.read_body())] == [1, 2] and first.status == "succeeded"
    flow.refresh_from_db()
    assert flow.source_state == {"watermark": "2026-11-02T10:00"}
    assert run_timed_flow(flow.pk, trigger="manual")["read"] == 0  # nothing new
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO orders VALUES (3, 1, '2026-11-03T09:00')"))
    assert run_timed_flow(flow.pk, trigger="manual")["read"] == 1
    newest = Message.objects.filter(flow=flow).order_by("-received_at").first()
    assert [row["id"] for row in json.loads(newest.read_body())] == [3]
