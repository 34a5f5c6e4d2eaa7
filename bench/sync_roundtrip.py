"""Sync round trip: JSON in, a 5-field mapping, JSON out, at 8 connections, beside the bare view.

    .venv/bin/python bench/sync_roundtrip.py [--seconds 10] [--only embedded|postgres]

Beside req/s and latency it reports the web processes' CPU milliseconds per request (from
/proc): steadier than wall-clock figures on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import commit, payload_1kb, running, wrk  # noqa: E402
from bench.ingest import PG_ADMIN, configurations, measured  # noqa: E402
from bench.results import write_section  # noqa: E402

# Its own database and Redis number, so it can run beside the ingest benchmark.
PG_DATABASE = "pushflow_bench_sync"
REDIS_DB = 15

FIELDS = [
    {"target": "id", "source": "id"},
    {"target": "status", "source": "status"},
    {"target": "patient", "source": "subject.reference"},
    {"target": "test", "source": "code.text"},
    {"target": "value", "source": "valueQuantity.value", "type": "decimal"},
]


def fresh_postgres() -> dict:
    """An empty PostgreSQL database and Redis number for this benchmark; the environment naming them."""
    for sql in (f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)", f"CREATE DATABASE {PG_DATABASE}"):
        subprocess.run(["psql", PG_ADMIN, "-q", "-c", sql], check=True)
    subprocess.run(["redis-cli", "-n", str(REDIS_DB), "flushdb"], check=True, capture_output=True)
    return {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{PG_DATABASE}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", choices=["embedded", "postgres"])
    args = parser.parse_args()
    body = payload_1kb()
    lines = ["| config | bare view req/s | bare p50/p99 ms | sync req/s | sync p50/p99 ms | non-2xx | web CPU ms/req bare / sync |",
             "|---|---|---|---|---|---|---|"]
    for name, env in configurations(args.only).items():
        if name == "postgres":
            env = {**env, **fresh_postgres()}
        with running(env) as server:
            fj = server.create("formats", {"name": "json", "kind": "json", "options": {}})
            listener = server.create("listeners", {"name": "sync", "path": "sync", "mode": "sync", "auth": "token"})
            server.create("flows", {"name": "sync", "listener": listener["id"], "source_format": fj["id"], "trigger": "event",
                                    "enabled": True, "mapping": {"fields": FIELDS},
                                    "destination": {"connection": None, "format": fj["id"], "options": {}}})
            wrk(server.base + "/listen/sync", server.token, body, 8, 2)
            base = measured(server, server.base + "/bench/bare", body, 8, args.seconds)
            sync = measured(server, server.base + "/listen/sync", body, 8, args.seconds)
        lines.append(f"| {name} | {base['rps']:.0f} | {base['p50_ms']:.1f} / {base['p99_ms']:.1f} | {sync['rps']:.0f} | "
                     f"{sync['p50_ms']:.1f} / {sync['p99_ms']:.1f} | {sync['non2xx'] + sync['socket_errors']} | "
                     f"{base['web_cpu_ms']:.2f} / {sync['web_cpu_ms']:.2f} |")
    text = "\n".join(lines)
    write_section("sync", f"Sync round trip, 5-field JSON mapping, 8 connections ({args.seconds}s each)", text,
                  f"commit {commit()}, {os.cpu_count()} cores")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
