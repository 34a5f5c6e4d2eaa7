"""Worker commits on PostgreSQL do not wait for the log flush; what a timed flow reads in still does.

lib.dbwrites.relax_commit_durability / durable_transaction, and the worker hook in config/celery.py
that relaxes every database connection a worker process opens."""
import threading

import pytest
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from config import celery as celery_config
from connections.models import Connection
from flows.models import Flow
from flows.services import run_timed_flow
from lib.dbwrites import durable_transaction, relax_commit_durability
from listeners.models import Message

pytestmark = pytest.mark.django_db(transaction=True)
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's synchronous_commit")


def synchronous_commit(db=connection) -> str:
    with db.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.fixture
def restored():
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET synchronous_commit")


@postgres_only
def test_a_relaxed_connection_still_waits_for_the_disk_inside_a_durable_transaction(restored):
    assert synchronous_commit() == "on"
    relax_commit_durability(connection)
    assert synchronous_commit() == "off"
    with durable_transaction():
        assert synchronous_commit() == "on"
    assert synchronous_commit() == "off"  # SET LOCAL: only that transaction


def test_relaxing_leaves_other_databases_alone():
    relax_commit_durability(connection)  # SQLite: nothing to set, nothing fails
    with durable_transaction():
        assert Message.objects.count() == 0


@postgres_only
def test_the_worker_hook_relaxes_each_connection_a_worker_process_opens(settings):
    settings.PUSHFLOW_WORKER_RELAXED_COMMITS = True
    seen = {}

    def in_a_new_thread():  # a thread's connection is a new one, as in a fresh pool process
        try:
            seen["value"] = synchronous_commit(connections["default"])
        finally:
            connections.close_all()

    celery_config._relax_commit_durability()
    try:
        thread = threading.Thread(target=in_a_new_thread)
        thread.start()
        thread.join(30)
    finally:
        connection_created.disconnect(dispatch_uid="pushflow-relaxed-commits")
    assert seen["value"] == "off"


def test_the_worker_hook_can_be_turned_off(settings):
    settings.PUSHFLOW_WORKER_RELAXED_COMMITS = False
    celery_config._relax_commit_durability()
    assert not connection_created.disconnect(dispatch_uid="pushflow-relaxed-commits")


def test_a_timed_flow_stores_what_it_reads_in_a_durable_transaction_before_the_source_lets_go(user, json_format, tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.json").write_text('{"a": 1}')
    source = Connection.objects.create(owner=user, name="inbox", kind="folder", options={"path": str(inbox)})
    flow = Flow.objects.create(owner=user, name="pick up", source_connection=source, source_format=json_format,
                               trigger="manual", mapping={"fields": [{"target": "a", "source": "a"}]})
    with CaptureQueriesContext(connection) as queries:
        assert run_timed_flow(flow.pk, trigger="manual")["read"] == 1
    statements = [q["sql"] for q in queries.captured_queries]
    insert = next(i for i, sql in enumerate(statements) if sql.startswith('INSERT INTO "listeners_message"'))
    if connection.vendor == "postgresql":
        assert statements[insert - 1] == "SET LOCAL synchronous_commit TO on"
    assert Message.objects.filter(flow=flow, method="READ").count() == 1
    assert not (inbox / "a.json").exists() and (inbox / "processed" / "a.json").exists()
