"""Database transport (SQLAlchemy Core): store a flow's mapped records as rows.

Options: `url` as a user types it (`postgresql://user@host/db`, `mysql://` for MySQL and
MariaDB, `sqlite:///path`), the password in `secrets.password`. Destination options:
`table`, `mode` insert|upsert with `key` (the columns that identify a row, so running
the same message again updates instead of duplicating), `create_table` (from the
mapping's fields and types when the table is missing). Table and column names are
only ever used through SQLAlchemy's Table objects, so the dialect quotes them; no
name is formatted into SQL. Rows go in batches (SQLAlchemy's multi-row inserts).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date, datetime
from decimal import Decimal

import orjson
import psycopg
from psycopg import sql
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    MetaData,
    Numeric,
    Table,
    Text,
    create_engine,
    exc,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, Engine, make_url

from . import Delivery, SourceItem, Transport, TransportError, register_transport

DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql",
           "mariadb": "mysql+pymysql", "sqlite": "sqlite"}
COLUMN_TYPES = {"string": Text, "integer": BigInteger, "decimal": lambda: Numeric(38, 10), "boolean": Boolean,
                "date": Date, "datetime": DateTime}
BATCH_ROWS = 1000
_engines: OrderedDict[str, Engine] = OrderedDict()
_lock = threading.Lock()


def database_url(options: dict, secrets: dict) -> URL:
    try:
        url = make_url(str(options.get("url") or ""))
    except exc.ArgumentError:
        raise TransportError("the database URL is not valid; use e.g. postgresql://user@host:5432/db") from None
    backend = url.drivername.split("+")[0]
    if backend not in DRIVERS:
        raise TransportError(f"database kind {backend!r} is not supported; use postgresql://, mysql:// or sqlite:///")
    url = url.set(drivername=DRIVERS[backend])
    if secrets.get("password"):
        url = url.set(password=secrets["password"])
    return url


def engine_for(options: dict, secrets: dict) -> Engine:
    """One pooled engine per database URL (the password is part of the key, never logged)."""
    url = database_url(options, secrets)
    key = url.render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            args = {"connect_timeout": 10} if url.drivername.startswith(("postgresql", "mysql")) else {}
            engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4, connect_args=args)
            _engines[key] = engine
            while len(_engines) > 32:
                _engines.popitem(last=False)[1].dispose()
        return engine


def _describe(error: Exception, url: URL) -> str:
    """A database error in words, without the URL's password."""
    text = str(getattr(error, "orig", error)).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
    where = f"{url.host or url.database}"
    return f"database {where}: {text[:300]}"


def _table(engine: Engine, name: str, delivery: Delivery, create: bool) -> Table:
    if not name or not isinstance(name, str):
        raise TransportError("the destination needs a table name")
    schema, _, table_name = name.rpartition(".") if "." in name else (None, "", name)
    metadata = MetaData()
    if inspect(engine).has_table(table_name, schema=schema or None):
        return Table(table_name, metadata, autoload_with=engine, schema=schema or None)
    if not create:
        raise TransportError(f"table {name!r} does not exist; create it or turn on create_table")
    columns = [Column(f, COLUMN_TYPES.get(delivery.field_types.get(f) or "string", Text)()) for f in delivery.fields]
    if not columns:
        raise TransportError("cannot create a table without fields")
    table = Table(table_name, metadata, *columns, schema=schema or None)
    metadata.create_all(engine)
    return table


def _upsert(table: Table, dialect: str, key: list[str], columns: list[str]):
    updates = [c for c in columns if c not in key]
    if dialect == "postgresql" or dialect == "sqlite":
        module = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(table)
        if not updates:
            return statement.on_conflict_do_nothing(index_elements=key)
        return statement.on_conflict_do_update(index_elements=key, set_={c: statement.excluded[c] for c in updates})
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(table)
        return statement.on_duplicate_key_update({c: statement.inserted[c] for c in (updates or key)})
    raise TransportError(f"upsert is not available on {dialect}")


def _copy(connection, table: Table, fields: list[str], records: list[dict]) -> None:
    """Plain inserts on PostgreSQL go through COPY (several times faster than INSERT batches);
    names are quoted by psycopg's sql.Identifier, values sent as COPY data, never as SQL."""
    target = sql.Identifier(table.schema, table.name) if table.schema else sql.Identifier(table.name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, fields)))
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for record in records:
            copy.write_row([record.get(f) for f in fields])


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def _rows(table: Table, delivery: Delivery) -> list[dict]:
    """Each record as a row; ISO 8601 text (how mappings write dates) becomes a date for date columns."""
    converters = {}
    for name in delivery.fields:
        column_type = table.columns[name].type
        if isinstance(column_type, DateTime):
            converters[name] = lambda v: datetime.fromisoformat(v.replace("Z", "+00:00"))
        elif isinstance(column_type, Date):
            converters[name] = lambda v: date.fromisoformat(v[:10])
    rows = []
    for number, record in enumerate(delivery.records, start=1):
        row = {}
        for name in delivery.fields:
            value = record.get(name)
            convert = converters.get(name)
            if convert is not None and isinstance(value, str) and value:
                try:
                    value = convert(value)
                except ValueError:
                    raise TransportError(f"record {number}: {value[:40]!r} is not a date for column {name!r}") from None
            row[name] = value
        rows.append(row)
    return rows


@register_transport
class DatabaseTransport(Transport):
    kind = "database"
    label = "Database"
    options_schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "minLength": 1, "title": "postgresql://user@host:5432/db, mysql://..., sqlite:///path"},
        },
        "required": ["url"],
        "additionalProperties": True,
    }
    destination_options_schema = {
        "type": "object",
        "properties": {
            "table": {"type": "string", "minLength": 1, "maxLength": 200},
            "mode": {"enum": ["insert", "upsert"], "default": "insert"},
            "key": {"type": "array", "items": {"type": "string"}, "title": "Columns that identify a row (upsert)"},
            "create_table": {"type": "boolean", "default": False},
        },
        "required": ["table"],
    }
    secret_options = ("password",)

    def write(self, options, secrets, destination, delivery: Delivery) -> str:
        engine = engine_for(options, secrets)
        try:
            table = _table(engine, destination.get("table"), delivery, bool(destination.get("create_table")))
            known = set(table.columns.keys())
            unknown = [f for f in delivery.fields if f not in known]
            if unknown:
                raise TransportError(f"table {table.name!r} has no column {unknown[0]!r}; its columns: {', '.join(sorted(known))}")
            if not delivery.records:
                return f"no rows for table {table.name}"
            mode = destination.get("mode") or "insert"
            copy = mode == "insert" and engine.dialect.name == "postgresql"
            if mode == "upsert":
                key = destination.get("key") or []
                if not key or any(k not in known for k in key):
                    raise TransportError(f"upsert needs 'key' columns of table {table.name!r}")
                statement = _upsert(table, engine.dialect.name, key, delivery.fields)
            else:
                statement = table.insert()
            with engine.begin() as connection:
                if copy:  # PostgreSQL reads ISO 8601 text for its date columns itself
                    _copy(connection, table, delivery.fields, delivery.records)
                else:
                    rows = _rows(table, delivery)
                    for start in range(0, len(rows), BATCH_ROWS):
                        connection.execute(statement, rows[start:start + BATCH_ROWS])
        except exc.OperationalError as error:
            raise TransportError(_describe(error, engine.url), retryable=True) from None
        except exc.SQLAlchemyError as error:
            raise TransportError(_describe(error, engine.url)) from None
        except psycopg.Error as error:  # raised by COPY, below SQLAlchemy
            raise TransportError(_describe(error, engine.url)) from None
        verb = "upserted" if mode == "upsert" else "inserted"
        return f"{verb} {len(delivery.records)} rows into {table.name}"

    source_options_schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1,
                      "title": "SELECT for a timed flow; :since is the last run's watermark"},
            "watermark": {"type": "string", "title": "Column whose largest value becomes the next :since"},
            "start": {"type": ["string", "number"], "title": ":since on the first run"},
        },
        "required": ["query"],
    }

    def read(self, options, secrets, source):
        """The query's rows as one JSON array; with a watermark, only rows newer than the last run's."""
        query = source.get("query")
        if not query:
            raise TransportError("a timed flow reading a database needs source option 'query'")
        watermark = source.get("watermark")
        since = (source.get("_state") or {}).get("watermark", source.get("start"))
        engine = engine_for(options, secrets)
        try:
            with engine.connect() as connection:
                result = connection.execute(text(query), {"since": since} if ":since" in query else {})
                rows = [dict(row._mapping) for row in result]
        except exc.SQLAlchemyError as error:
            raise TransportError(_describe(error, engine.url), retryable=isinstance(error, exc.OperationalError)) from None
        if not rows:
            return
        state = None
        if watermark:
            if watermark not in rows[0]:
                raise TransportError(f"the query's rows have no column {watermark!r} to keep as the watermark")
            newest = max(row[watermark] for row in rows if row[watermark] is not None)
            state = {"watermark": newest.isoformat() if hasattr(newest, "isoformat") else newest}
        data = orjson.dumps(rows, default=_json_value)
        yield SourceItem(f"query: {len(rows)} rows", data, "application/json", state=state)

    def test(self, options, secrets) -> str:
        engine = engine_for(options, secrets)
        try:
            with engine.connect() as connection:
                connection.execute(select(1))
        except exc.SQLAlchemyError as error:
            raise TransportError(_describe(error, engine.url)) from None
        return f"connected to {engine.url.host or engine.url.database} ({engine.dialect.name})"
