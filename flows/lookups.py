"""Lookup tables for `$lookup(table, key)`: static ones written in the flow, and database ones
read through a connection once per run (so a run sees one consistent table and the database
is asked once, not once per record).

A database table is written `{"$database": {"connection": <id>, "table": "units",
"key": "code", "value": "name"}}`; the connection must be one the flow's owner may use.
"""
from __future__ import annotations

from sqlalchemy import MetaData, Table, exc, select

from connections.models import Connection
from connections.transports import TransportError
from connections.transports.database import engine_for

MAX_ROWS = 100_000
MARK = "$database"


class LookupTableError(Exception):
    """A lookup table that cannot be read; `reason` names it."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def database_tables(lookups: dict) -> dict:
    return {name: table[MARK] for name, table in (lookups or {}).items() if isinstance(table, dict) and MARK in table}


def check_spec(name: str, spec) -> str | None:
    """What is wrong with a database lookup spec, or None."""
    if not isinstance(spec, dict):
        return f"lookup {name!r}: $database must be an object"
    missing = [k for k in ("connection", "table", "key", "value") if not spec.get(k)]
    if missing:
        return f"lookup {name!r}: $database needs {', '.join(missing)}"
    if not all(isinstance(spec[k], str) for k in ("table", "key", "value")):
        return f"lookup {name!r}: table, key and value are names (text)"
    return None


def resolve(lookups: dict, visible_connections) -> dict:
    """The lookups with every database table read into a dict (key as text -> value)."""
    tables = dict(lookups or {})
    for name, spec in database_tables(lookups).items():
        problem = check_spec(name, spec)
        if problem:
            raise LookupTableError(problem)
        connection = visible_connections.filter(pk=spec["connection"], kind="database").first()
        if connection is None:
            raise LookupTableError(f"lookup {name!r}: database connection {spec['connection']} is not one this flow may use")
        tables[name] = _read(name, connection, spec)
    return tables


def _read(name: str, connection: Connection, spec: dict) -> dict:
    try:
        engine = engine_for(connection.options or {}, connection.secrets)
        table = Table(spec["table"], MetaData(), autoload_with=engine)
        if spec["key"] not in table.c or spec["value"] not in table.c:
            raise LookupTableError(f"lookup {name!r}: table {spec['table']!r} has no column {spec['key']!r} or {spec['value']!r}")
        with engine.connect() as db:
            rows = db.execute(select(table.c[spec["key"]], table.c[spec["value"]]).limit(MAX_ROWS + 1)).all()
    except TransportError as error:
        raise LookupTableError(f"lookup {name!r}: {error.reason}") from None
    except exc.NoSuchTableError:
        raise LookupTableError(f"lookup {name!r}: table {spec['table']!r} does not exist") from None
    except exc.SQLAlchemyError as error:
        raise LookupTableError(f"lookup {name!r}: the database failed: {str(getattr(error, 'orig', error))[:200]}") from None
    if len(rows) > MAX_ROWS:
        raise LookupTableError(f"lookup {name!r}: more than {MAX_ROWS} rows; use a smaller table or a view")
    return {str(key): value for key, value in rows}
