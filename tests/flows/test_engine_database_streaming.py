"""Database destinations streamed in chunks give what collecting every record first gives:
the same rows, counts, rejections, log and failures, for each record policy and write mode,
on SQLite and on PostgreSQL; a run that fails stores nothing (one transaction per run)."""
import json
import os
import uuid

import psycopg
import pytest
import sqlalchemy as sa

from connections.models import Connection
from connections.transports.database import DatabaseTransport, TableRows, engine_for
from flows import engine
from flows.engine import RunFailure, execute
from flows.models import Flow
from formats.models import Format

pytestmark = pytest.mark.django_db

GOOD = [{"id": i, "name": f"n{i}", "amount": f"{i}.5", "day": f"2026-01-{i % 28 + 1:02d}"} for i in range(2500)]
BAD_AT_3 = [*GOOD[:3], {"id": "three", "name": "x"}, *GOOD[3:10], {"id": "x", "name": "y"}]
BAD_LATE = [*GOOD[:2300], {"id": "late"}, *GOOD[2300:]]  # after two chunks were stored
NO_NAME = [*GOOD[:1500], {"id": 9999}, *GOOD[1500:1600]]  # mapped well, refused by a NOT NULL column
POSTGRES_URL = os.environ.get("PUSHFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/formats2")


def postgres_url() -> str:
    """The destination database on the machine's PostgreSQL (created when missing), or a skip."""
    url = sa.make_url(POSTGRES_URL)
    try:
        with psycopg.connect(url.set(database="postgres").render_as_string(hide_password=False).replace(
                "postgresql+psycopg", "postgresql"), autocommit=True, connect_timeout=5) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [url.database]).fetchone():
                admin.execute(f'CREATE DATABASE "{url.database}"')
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL is not reachable: {error.__class__.__name__}")
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'out.sqlite3'}" if request.param == "sqlite" else postgres_url()


@pytest.fixture
def make_flow(user, database_url):
    tables = []

    def make(on_error: str, mode: str) -> Flow:
        source = Format.objects.create(owner=user, name="in", kind="json", options={})
        out = Format.objects.create(owner=user, name="out", kind="json", options={"lines": True})
        connection = Connection.objects.create(owner=user, name="db", kind="database", options={"url": database_url})
        return Flow.objects.create(
            owner=user, name="stream", source_format=source, destination_format=out, on_error=on_error,
            destination_connection=connection, destination_options={"mode": mode, "key": ["id"], "create_table": True},
            mapping={"records": "[*]", "fields": [{"target": "id", "source": "id", "type": "integer"},
                                                  {"target": "name", "expr": "$uppercase(name)"},
                                                  {"target": "amount", "source": "amount", "type": "decimal"},
                                                  {"target": "day", "source": "day", "type": "date"}]})

    make.tables = tables
    yield make
    db = engine_for({"url": database_url}, {})
    for table in tables:
        sa.Table(table, sa.MetaData()).drop(db, checkfirst=True)


def stored(url: str, table: str):
    db = engine_for({"url": url}, {})
    if not sa.inspect(db).has_table(table):
        return None
    with db.connect() as connection:
        rows = connection.execute(sa.select(sa.Table(table, sa.MetaData(), autoload_with=db))).all()
    return sorted(((r.id, r.name, None if r.amount is None else str(r.amount), r.day) for r in rows),
                  key=lambda r: r[0])


def outcome(make_flow, flow: Flow, body: bytes, stream: bool, table_exists: bool):
    """The run's result (or failure) and the rows it stored, with the table name made neutral.
    `table_exists`: the table is there with a key (upsert needs one), a NOT NULL name and one row."""
    table = f"pf_stream_{uuid.uuid4().hex[:10]}"
    make_flow.tables.append(table)
    flow.destination_options = {**flow.destination_options, "table": table}
    url = flow.destination_connection.options["url"]
    if table_exists:
        db = engine_for({"url": url}, {})
        with db.begin() as connection:
            connection.execute(sa.text(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                                       "amount NUMERIC(38, 10), day DATE)"))
            connection.execute(sa.text(f"INSERT INTO {table} (id, name) VALUES (-1, 'old')"))
    try:
        result = execute(flow, body, message_id="m", stream=stream)
    except RunFailure as exc:
        return ("failed", exc.reason.replace(table, "T"), exc.bad_data, exc.retryable, stored(url, table))
    log = [line.replace(table, "T") for line in result.log]
    return (result.output, result.records_in, result.records_out, result.rejected, result.filtered, log,
            stored(url, table))


@pytest.mark.parametrize("mode", ["insert", "upsert"])
@pytest.mark.parametrize("on_error", ["reject_record", "reject_payload", "halt"])
@pytest.mark.parametrize("records", [GOOD, BAD_AT_3, BAD_LATE, NO_NAME, [], [{"id": "bad"}]],
                         ids=["good", "bad", "bad-late", "no-name", "none", "all-bad"])
def test_streamed_database_runs_store_what_collected_runs_store(make_flow, mode, on_error, records):
    flow = make_flow(on_error, mode)
    body = json.dumps(records).encode()
    table_exists = mode == "upsert" or records is NO_NAME
    streamed = outcome(make_flow, flow, body, True, table_exists)
    collected = outcome(make_flow, flow, body, False, table_exists)
    assert streamed == collected
    if records is GOOD:
        assert len(streamed[-1]) == len(GOOD) + (mode == "upsert")  # beside the row that was there
    if records is NO_NAME:  # the database refuses record 1501 (in a COPY on PostgreSQL): nothing is kept
        assert streamed[0] == "failed" and "delivery to 'db' failed" in streamed[1] and streamed[2] is False
        assert streamed[-1] == [(-1, "old", None, None)]
    if on_error == "reject_payload" and records in (BAD_AT_3, BAD_LATE):
        assert streamed[0] == "failed"
        # Nothing stored: no table was created, or the upsert table holds only its old row.
        assert streamed[-1] == ([(-1, "old", None, None)] if mode == "upsert" else None)


def test_a_run_stores_its_rows_in_chunks_in_one_transaction(make_flow, monkeypatch):
    monkeypatch.setattr(engine, "STORE_CHUNK_ROWS", 100)
    monkeypatch.setattr(DatabaseTransport, "write", lambda *a: pytest.fail("the run collected its records first"))
    chunks = []
    write = TableRows.write
    monkeypatch.setattr(TableRows, "write", lambda self, records: (chunks.append(len(records)), write(self, records)))
    flow = make_flow("reject_payload", "insert")
    good = outcome(make_flow, flow, json.dumps(GOOD[:1050]).encode(), True, False)
    assert good[2] == 1050 and len(good[-1]) == 1050 and chunks == [100] * 10 + [50]
    assert good[5][-1] == "inserted 1050 rows into T"
    chunks.clear()
    refused = outcome(make_flow, flow, json.dumps([*GOOD[:1050], {"id": "bad"}]).encode(), True, False)
    assert refused[0] == "failed" and chunks == [100] * 10 and refused[-1] is None  # written, then rolled back
