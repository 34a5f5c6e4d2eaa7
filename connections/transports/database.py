"""Database transport (SQLAlchemy Core): store a flow's mapped records as rows.

Options: `url` as a user types it (`postgresql://user@host/db`, `mysql://` for MySQL and
MariaDB, `sqlite:///path`), the password in `secrets.password`. Destination options:
`table`, `mode` insert|upsert with `key` (the columns that identify a row, so running
the same message again updates instead of duplicating), `create_table` (from the
mapping's fields and types when the table is missing). Table and column names are
only ever used through SQLAlchemy's Table objects, so the dialect quotes them; no
name is formatted into SQL. Rows go in chunks (SQLAlchemy's multi-row inserts, COPY on PostgreSQL), all of a run's
in one transaction committed at its end, so a run that fails stores nothing.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
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
    event,
    exc,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from . import Delivery, RowSink, SourceItem, Transport, TransportError, register_transport

DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql",
           "mariadb": "mysql+pymysql", "sqlite": "sqlite"}
COLUMN_TYPES = {"string": Text, "integer": BigInteger, "decimal": lambda: Numeric(38, 10), "boolean": Boolean,
                "date": Date, "datetime": DateTime}
BATCH_ROWS = 1000
# Dialects whose CREATE TABLE commits at once (no transactional DDL): a failed run drops
# the table it created instead.
DDL_COMMITS_AT_ONCE = ("mysql", "mariadb")
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
            if url.drivername.startswith("sqlite"):
                _transactional_sqlite(engine)
            _engines[key] = engine
            while len(_engines) > 32:
                _engines.popitem(last=False)[1].dispose()
        return engine


def _transactional_sqlite(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions, so CREATE TABLE is inside a
    run's transaction and rolls back with it (SQLAlchemy's recipe for pysqlite)."""

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN")


def _describe(error: Exception, url: URL) -> str:
    """A database error in words, without the URL's password."""
    text = str(getattr(error, "orig", error)).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
    where = f"{url.host or url.database}"
    return f"database {where}: {text[:300]}"


def _table(connection: Connection, name: str, fields: list[str], field_types: dict,
           create: bool) -> tuple[Table, bool]:
    """The destination table, and whether it was created now (from the mapping's fields and types)."""
    if not name or not isinstance(name, str):
        raise TransportError("the destination needs a table name")
    schema, _, table_name = name.rpartition(".") if "." in name else (None, "", name)
    metadata = MetaData()
    if inspect(connection).has_table(table_name, schema=schema or None):
        return Table(table_name, metadata, autoload_with=connection, schema=schema or None), False
    if not create:
        raise TransportError(f"table {name!r} does not exist; create it or turn on create_table")
    columns = [Column(f, COLUMN_TYPES.get(field_types.get(f) or "string", Text)()) for f in fields]
    if not columns:
        raise TransportError("cannot create a table without fields")
    table = Table(table_name, metadata, *columns, schema=schema or None)
    metadata.create_all(connection)  # inside the run's transaction (MySQL alone commits DDL at once)
    return table, True


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


def _copy(connection, table: Table, fields: list[str]):
    """A COPY into `table` for plain inserts on PostgreSQL (several times faster than INSERT
    batches), to enter and keep open for the run's chunks: one statement, streamed. Names are
    quoted by psycopg's sql.Identifier, values sent as COPY data, never as SQL."""
    target = sql.Identifier(table.schema, table.name) if table.schema else sql.Identifier(table.name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, fields)))
    return connection.connection.driver_connection.cursor().copy(statement)


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def _converters(table: Table, fields: list[str]) -> dict:
    """ISO 8601 text (how mappings write dates) to a date or datetime, for date columns."""
    converters = {}
    for name in fields:
        column_type = table.columns[name].type
        if isinstance(column_type, DateTime):
            converters[name] = lambda v: datetime.fromisoformat(v.replace("Z", "+00:00"))
        elif isinstance(column_type, Date):
            converters[name] = lambda v: date.fromisoformat(v[:10])
    return converters


def _rows(converters: dict, fields: list[str], records: list[dict], first_number: int) -> list[dict]:
    """Each record as a row, numbered from `first_number` in errors."""
    rows = []
    for number, record in enumerate(records, start=first_number):
        row = {}
        for name in fields:
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


@contextmanager
def _database_errors(engine: Engine):
    """SQLAlchemy's and psycopg's errors as TransportError, in words without the password."""
    try:
        yield
    except exc.OperationalError as error:
        raise TransportError(_describe(error, engine.url), retryable=True) from None
    except exc.SQLAlchemyError as error:
        raise TransportError(_describe(error, engine.url)) from None
    except psycopg.Error as error:  # raised by COPY, below SQLAlchemy
        raise TransportError(_describe(error, engine.url)) from None


class TableRows(RowSink):
    """A run's records into one table, in one transaction: the table is found (or created)
    and its columns checked on entering; each chunk goes in as one multi-row INSERT (COPY on
    PostgreSQL for plain inserts); leaving commits, or rolls back when the run failed."""

    def __init__(self, engine: Engine, destination: dict, fields: list[str], field_types: dict):
        self.engine = engine
        self.destination = destination
        self.fields = fields
        self.field_types = field_types
        self.mode = destination.get("mode") or "insert"
        self.count = 0
        self.statement = None
        self.open_copy = None  # (the COPY's context, the COPY) once the first chunk came
        self.summary = ""

    def __enter__(self) -> TableRows:
        with _database_errors(self.engine):
            self.connection = self.engine.connect()
            try:
                self.transaction = self.connection.begin()
                self.table, self.created = _table(self.connection, self.destination.get("table"), self.fields, self.field_types,
                                    bool(self.destination.get("create_table")))
            except BaseException:
                self._rollback()
                raise
        known = set(self.table.columns.keys())
        unknown = [f for f in self.fields if f not in known]
        if unknown:
            self._rollback()
            raise TransportError(f"table {self.table.name!r} has no column {unknown[0]!r}; its columns: {', '.join(sorted(known))}")
        self.copy = self.mode == "insert" and self.engine.dialect.name == "postgresql"
        self.converters = {} if self.copy else _converters(self.table, self.fields)
        return self

    def _prepare(self) -> None:
        if self.mode == "upsert":
            key = self.destination.get("key") or []
            if not key or any(k not in self.table.columns for k in key):
                raise TransportError(f"upsert needs 'key' columns of table {self.table.name!r}")
            self.statement = _upsert(self.table, self.engine.dialect.name, key, self.fields)
        else:
            self.statement = self.table.insert()

    def write(self, records: list[dict]) -> None:
        if not records:
            return
        if self.statement is None:
            self._prepare()
        with _database_errors(self.engine):
            if self.copy:  # PostgreSQL reads ISO 8601 text for its date columns itself
                if self.open_copy is None:
                    context = _copy(self.connection, self.table, self.fields)
                    self.open_copy = context, context.__enter__()
                fields, write_row = self.fields, self.open_copy[1].write_row
                for record in records:
                    write_row([record.get(f) for f in fields])
            else:
                self.connection.execute(self.statement, _rows(self.converters, self.fields, records, self.count + 1))
        self.count += len(records)

    def __exit__(self, failed_type, failure, traceback) -> None:
        if failed_type is not None:
            self._rollback()
            return
        with _database_errors(self.engine):
            try:
                if self.open_copy is not None:
                    self.open_copy, (context, _) = None, self.open_copy
                    context.__exit__(None, None, None)  # the COPY ends: PostgreSQL checks every row now
                self.transaction.commit()
            except BaseException:
                self._rollback()
                raise
            finally:
                self.connection.close()
        verb = "upserted" if self.mode == "upsert" else "inserted"
        self.summary = f"{verb} {self.count} rows into {self.table.name}" if self.count else f"no rows for table {self.table.name}"

    def _rollback(self) -> None:
        """Undo every chunk. Errors are ignored here: a COPY or a connection that already failed
        took its transaction with it, and the run's own failure is the one to report."""
        if self.open_copy is not None:  # end the COPY with a failure: nothing of it is kept
            self.open_copy, (context, _) = None, self.open_copy
            try:
                context.__exit__(TransportError, TransportError("the run failed"), None)
            except (exc.SQLAlchemyError, psycopg.Error):
                pass
        try:
            self.connection.rollback()
        except (exc.SQLAlchemyError, psycopg.Error):
            pass
        finally:
            self.connection.close()
        if getattr(self, "created", False) and self.engine.dialect.name in DDL_COMMITS_AT_ONCE:
            try:  # the rollback could not take back the table this run created
                self.table.drop(self.engine, checkfirst=True)
            except exc.SQLAlchemyError:
                pass


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

    stores_rows = True

    def open_rows(self, options, secrets, destination, fields, field_types) -> TableRows:
        return TableRows(engine_for(options, secrets), destination, fields, field_types)

    def write(self, options, secrets, destination, delivery: Delivery) -> str:
        """All the records at once (the engine streams through `open_rows` instead)."""
        with self.open_rows(options, secrets, destination, delivery.fields, delivery.field_types) as rows:
            for start in range(0, len(delivery.records), BATCH_ROWS):
                rows.write(delivery.records[start:start + BATCH_ROWS])
        return rows.summary

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
