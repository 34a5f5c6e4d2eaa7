"""Database write speed: mapped rows written to PostgreSQL through the database transport,
beside psycopg's COPY of the same rows in the same run. Target: the transport at least 50%
of COPY's rows per second.

    .venv/bin/python bench/database_write.py [--rows 1000000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402

from bench.harness import commit  # noqa: E402
from bench.results import write_section  # noqa: E402
from connections.transports import Delivery, transports  # noqa: E402

URL = "postgresql://postgres@127.0.0.1:5432/test"
FIELDS = ["id", "patient", "code", "value", "unit", "observed"]
TYPES = {"id": "integer", "value": "decimal", "observed": "datetime"}
DDL = ("CREATE TABLE {} (id bigint, patient text, code text, value numeric(38, 10), unit text, "
       "observed timestamp with time zone)")


def records(count: int) -> list[dict]:
    return [{"id": i, "patient": f"P{i % 5000:05d}", "code": "2345-7", "value": Decimal(f"{i % 200}.{i % 10}"),
             "unit": "mg/dL", "observed": f"2026-11-{1 + i % 28:02d}T08:{i % 60:02d}:00+00:00"} for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = records(args.rows)
    with psycopg.connect(URL.replace("postgresql://", "postgresql://", 1), autocommit=True) as db:
        for name in ("bench_copy", "bench_transport"):
            db.execute(f"DROP TABLE IF EXISTS {name}")
            db.execute(DDL.format(name))
        started = time.perf_counter()
        with db.cursor().copy("COPY bench_copy (id, patient, code, value, unit, observed) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[f] for f in FIELDS])
        copy_seconds = time.perf_counter() - started
    database = transports.get("database")
    started = time.perf_counter()
    database.write({"url": URL}, {}, {"table": "bench_transport"}, Delivery(b"", "", {}, rows, FIELDS, TYPES))
    transport_seconds = time.perf_counter() - started
    with psycopg.connect(URL, autocommit=True) as db:
        counts = [db.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in ("bench_copy", "bench_transport")]
        for name in ("bench_copy", "bench_transport"):
            db.execute(f"DROP TABLE {name}")
    ratio = copy_seconds / transport_seconds
    body = "\n".join([
        "| what | rows | seconds | rows/s |", "|---|---|---|---|",
        f"| psycopg COPY | {counts[0]} | {copy_seconds:.2f} | {counts[0] / copy_seconds:,.0f} |",
        f"| database transport | {counts[1]} | {transport_seconds:.2f} | {counts[1] / transport_seconds:,.0f} |",
        "", f"The transport writes at {ratio:.2f}x COPY's rate (target: at least 0.5x)."])
    write_section("database", "Database write: mapped rows into PostgreSQL (transport vs bare COPY)", body,
                  f"commit {commit()}, {os.cpu_count()} cores")
    print(body)
    return 0 if counts[0] == counts[1] == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
