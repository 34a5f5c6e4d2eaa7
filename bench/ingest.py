"""Ingest throughput: async listener vs a bare Django view on the same server, same run.

For each configuration (embedded default; PostgreSQL + Redis) it starts Pushflow,
creates a JSON -> CSV flow behind an async listener, and runs wrk (-t2) with a 1 KB
JSON POST at 32 and 128 connections against the bare view and against the listener,
then against the bare view served by stock gunicorn (see harness.stock_django).
After the load it checks every 2xx answer has a stored message: wrk stops with up to
one request per connection in flight, so stored may exceed 2xx by at most that many,
never fall below it.

    .venv/bin/python bench/ingest.py [--seconds 10] [--only embedded|postgres]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import commit, payload_1kb, running, stock_django, wrk  # noqa: E402
from bench.results import write_section  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def configurations(only: str | None):
    configs = {"embedded": {}}
    configs["postgres"] = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/pushflow_bench",
                           "CELERY_BROKER_URL": "redis://127.0.0.1:6379/7"}
    return {k: v for k, v in configs.items() if only in (None, k)}


def fresh_postgres() -> None:
    for sql in ("DROP DATABASE IF EXISTS pushflow_bench WITH (FORCE)", "CREATE DATABASE pushflow_bench"):
        subprocess.run(["psql", PG_ADMIN, "-q", "-c", sql], check=True)
    subprocess.run(["redis-cli", "-n", "7", "flushdb"], check=True, capture_output=True)


def setup_flow(server) -> int:
    out = tempfile.mkdtemp(prefix="pushflow-bench-out-")
    fj = server.create("formats", {"name": "json", "kind": "json", "options": {}})
    fc = server.create("formats", {"name": "csv", "kind": "csv", "options": {"header": True}})
    conn = server.create("connections", {"name": "out", "kind": "folder", "options": {"path": out}})
    listener = server.create("listeners", {"name": "bench", "path": "bench", "mode": "async", "auth": "token"})
    server.create("flows", {
        "name": "bench", "listener": listener["id"], "source_format": fj["id"], "trigger": "event", "enabled": True,
        "mapping": {"fields": [{"target": "id", "source": "id"}, {"target": "subject", "source": "subject.reference"},
                               {"target": "value", "source": "valueQuantity.value", "type": "decimal"}]},
        "destination": {"connection": conn["id"], "format": fc["id"], "options": {"file_name": "{message_id}.csv"}},
    })
    return listener["id"]


def measured(server, url: str, body: str, connections: int, seconds: int) -> dict:
    """A wrk run against `url`, with the web's CPU milliseconds per request it cost."""
    before = server.cpu_seconds()
    result = wrk(url, server.token, body, connections, seconds)
    after = server.cpu_seconds()
    result["web_cpu_ms"] = (after["web"] - before["web"]) * 1000 / max(result["requests"], 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", choices=["embedded", "postgres"])
    args = parser.parse_args()
    body = payload_1kb()
    rows, failures = [], []
    for name, env in configurations(args.only).items():
        if name == "postgres":
            fresh_postgres()
        with running(env) as server:
            listener_id = setup_flow(server)
            wrk(server.base + "/bench/bare", server.token, body, 8, 2)  # warm up both paths
            accepted = wrk(server.base + "/listen/bench", server.token, body, 8, 2)["ok"]
            for connections in (32, 128):
                base = measured(server, server.base + "/bench/bare", body, connections, args.seconds)
                ingest = measured(server, server.base + "/listen/bench", body, connections, args.seconds)
                accepted += ingest["ok"]
                rows.append((name, connections, base, ingest))
            with stock_django(server) as stock:
                for row in rows:
                    if row[0] == name:
                        row[2]["stock_rps"] = wrk(stock + "/bench/bare", server.token, body, row[1], args.seconds)["rps"]
            stored = server.message_count(listener_id)
            total_connections = 8 + 32 + 128
            if not (accepted <= stored <= accepted + total_connections):
                failures.append(f"{name}: {accepted} answers 2xx but {stored} messages stored")
            rows.append((name, "stored", stored, accepted))
    lines = ["| config | conns | bare view req/s | bare p50/p99 ms | ingest req/s | ingest p50/p99 ms | ratio | non-2xx "
             "| web CPU ms/req bare / ingest | CPU ratio | bare view on gunicorn req/s | ratio to it |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    checks = []
    for row in rows:
        if row[1] == "stored":
            checks.append(f"- {row[0]}: {row[3]} answers 2xx, {row[2]} messages stored")
            continue
        name, conns, base, ingest = row
        lines.append(f"| {name} | {conns} | {base['rps']:.0f} | {base['p50_ms']:.1f} / {base['p99_ms']:.1f} | "
                     f"{ingest['rps']:.0f} | {ingest['p50_ms']:.1f} / {ingest['p99_ms']:.1f} | "
                     f"{ingest['rps'] / base['rps']:.2f}x | {ingest['non2xx'] + ingest['socket_errors']} | "
                     f"{base['web_cpu_ms']:.2f} / {ingest['web_cpu_ms']:.2f} | {base['web_cpu_ms'] / ingest['web_cpu_ms']:.2f}x | "
                     f"{base['stock_rps']:.0f} | {ingest['rps'] / base['stock_rps']:.2f}x |")
    notes = ["", "CPU ratio: the web processes' CPU time per bare-view request over their CPU time per ingested payload "
             "(from /proc, steadier than req/s on a shared machine; the worker's CPU is not in it).",
             "Bare view on gunicorn: the same view and settings served the stock way (gunicorn gthread, 2 workers x 16 "
             "threads, Pushflow's server before uvicorn), measured right after, beside the same running worker; "
             "ratio to it: ingest req/s over its req/s."]
    text = "\n".join(lines + notes + ["", "Stored messages against 2xx answers:", *checks, *(f"- FAILED {f}" for f in failures)])
    write_section("ingest", f"Async ingest vs bare Django view (wrk -t2, 1 KB JSON, {args.seconds}s each)", text,
                  f"commit {commit()}, {os.cpu_count()} cores")
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
