"""The database transport against the real PostgreSQL and MariaDB on this machine, and SQLite:
insert, upsert on a key (a repeated message updates, never duplicates), create-table from the
mapping, hostile names quoted, clear errors without secrets."""
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connections import services
from connections.models import Connection
from connections.transports import Delivery, TransportError, transports
from connections.transports.database import engine_for

database = transports.get("database")
SERVERS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql://root@127.0.0.1:3306/test",
}


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def target_db(request, tmp_path):
    url = SERVERS.get(request.param) or f"sqlite:///{tmp_path / 'out.sqlite3'}"
    options = {"url": url}
    try:
        engine = engine_for(options, {})
        with engine.connect() as connection:
            connection.execute(sa.select(1))
    except Exception as error:  # noqa: BLE001 — a missing server is a skip with its reason, not a failure here
        pytest.skip(f"{request.param} is not reachable: {error.__class__.__name__}")
    table = f"pf_test_{uuid.uuid4().hex[:10]}"
    yield options, table, engine
    sa.Table(table, sa.MetaData()).drop(engine, checkfirst=True)


def delivery(records, types=None):
    fields = list(records[0]) if records else ["id"]
    return Delivery(b"", "application/json", {"message_id": "m1"}, records, fields, types or {})


def rows(engine, table):
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sa.text(f'SELECT * FROM {engine.dialect.identifier_preparer.quote(table)}'))]


def test_create_insert_and_upsert_without_duplicates(target_db):
    options, table, engine = target_db
    types = {"id": "integer", "amount": "decimal", "day": "date"}
    first = [{"id": 1, "name": "Ann", "amount": Decimal("12.50"), "day": "2026-01-02"},
             {"id": 2, "name": "Bo", "amount": Decimal("0.10"), "day": "2026-01-03"}]
    where = database.write(options, {}, {"table": table, "create_table": True}, delivery(first, types))
    assert where == f"inserted 2 rows into {table}"
    again = [{"id": 2, "name": "Bob", "amount": Decimal("7"), "day": "2026-01-04"},
             {"id": 3, "name": "Cy", "amount": None, "day": None}]
    # Upsert needs a unique key on the table.
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE UNIQUE INDEX {table}_id ON {table} (id)"))
    assert "upserted 2 rows" in database.write(options, {}, {"table": table, "mode": "upsert", "key": ["id"]}, delivery(again, types))
    stored = sorted(rows(engine, table), key=lambda r: r["id"])
    assert [r["id"] for r in stored] == [1, 2, 3]
    assert stored[1]["name"] == "Bob" and Decimal(stored[0]["amount"]) == Decimal("12.50")


def test_a_missing_table_or_column_is_a_clear_error(target_db):
    options, table, engine = target_db
    with pytest.raises(TransportError) as caught:
        database.write(options, {}, {"table": table}, delivery([{"id": 1}]))
    assert "does not exist" in caught.value.reason
    database.write(options, {}, {"table": table, "create_table": True}, delivery([{"id": 1}]))
    with pytest.raises(TransportError) as caught:
        database.write(options, {}, {"table": table}, delivery([{"id": 1, "nope": 2}]))
    assert "has no column 'nope'" in caught.value.reason


def test_a_hostile_table_name_is_quoted_never_run(target_db):
    options, table, engine = target_db
    database.write(options, {}, {"table": table, "create_table": True}, delivery([{"id": 1}], {"id": "integer"}))
    hostile = f'{table}"; DROP TABLE {table}; --'
    with pytest.raises(TransportError) as caught:
        database.write(options, {}, {"table": hostile}, delivery([{"id": 2}]))
    assert "does not exist" in caught.value.reason
    assert rows(engine, table) == [{"id": 1}]  # the real table is untouched


def test_the_test_action_reports_a_refused_login_without_the_password(user):
    connection = Connection.objects.create(owner=user, name="pg", kind="database",
                                           options={"url": "postgresql://nobody@127.0.0.1:5432/no_such_db"})
    connection.secrets = {"password": "hunter2-secret"}
    connection.save()
    ok, detail = services.test_connection(connection)
    assert ok is False and "hunter2" not in detail and "127.0.0.1" in detail
    good = Connection.objects.create(owner=user, name="pg2", kind="database", options={"url": SERVERS["postgresql"]})
    assert services.test_connection(good) == (True, "connected to 127.0.0.1 (postgresql)")


@pytest.mark.parametrize("url, words", [("oracle://x/y", "not supported"), ("not a url", "not valid")])
def test_unsupported_urls_are_refused(url, words):
    with pytest.raises(TransportError) as caught:
        database.write({"url": url}, {}, {"table": "t"}, delivery([{"id": 1}]))
    assert words in caught.value.reason


@pytest.mark.django_db(transaction=True)
def test_a_flow_writes_mapped_rows_and_a_replay_updates_them(user, json_format, tmp_path):
    from flows.engine import execute
    from flows.models import Flow

    url = f"sqlite:///{tmp_path / 'flow.sqlite3'}"
    engine = engine_for({"url": url}, {})
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE obs (id INTEGER PRIMARY KEY, value NUMERIC, unit TEXT)"))
    target = Connection.objects.create(owner=user, name="db", kind="database", options={"url": url})
    flow = Flow.objects.create(owner=user, name="obs", source_format=json_format, destination_connection=target,
                               destination_options={"table": "obs", "mode": "upsert", "key": ["id"]},
                               mapping={"records": "results[*]", "fields": [
                                   {"target": "id", "source": "id", "type": "integer"},
                                   {"target": "value", "source": "v", "type": "decimal"}, {"target": "unit", "source": "u"}]})
    body = b'{"results": [{"id": 1, "v": "5.4", "u": "mmol/L"}, {"id": 2, "v": "7", "u": "mg/dL"}]}'
    execute(flow, body, message_id="m1")
    execute(flow, body, message_id="m1")  # delivered twice (a retry): still two rows
    assert sorted(rows(engine, "obs"), key=lambda r: r["id"]) == [{"id": 1, "value": 5.4, "unit": "mmol/L"},
                                                                  {"id": 2, "value": 7, "unit": "mg/dL"}]


def test_a_value_the_column_cannot_hold_is_a_clear_error(target_db):
    options, table, engine = target_db
    database.write(options, {}, {"table": table, "create_table": True},
                   delivery([{"id": 1, "day": "2026-01-02"}], {"id": "integer", "day": "date"}))
    with pytest.raises(TransportError) as caught:
        database.write(options, {}, {"table": table}, delivery([{"id": 2, "day": "someday"}], {"id": "integer", "day": "date"}))
    assert "someday" in caught.value.reason or "date" in caught.value.reason


def test_a_failed_run_keeps_no_rows_and_no_table_it_created(target_db):
    options, table, engine = target_db
    sink = database.open_rows(options, {}, {"table": table, "create_table": True}, ["id", "name"], {"id": "integer"})
    with pytest.raises(RuntimeError), sink:
        sink.write([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        sink.write([{"id": 3, "name": "c"}])
        raise RuntimeError("the run failed after two chunks")
    assert not sa.inspect(engine).has_table(table)
    with database.open_rows(options, {}, {"table": table, "create_table": True}, ["id", "name"], {"id": "integer"}) as sink:
        sink.write([{"id": 1, "name": "a"}])
    assert sink.summary == f"inserted 1 rows into {table}" and rows(engine, table) == [{"id": 1, "name": "a"}]
