"""Sync round trip: JSON in, a 5-field mapping, JSON out, at 8 connections, beside the bare view.

    .venv/bin/python bench/sync_roundtrip.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import commit, payload_1kb, running, wrk  # noqa: E402
from bench.ingest import configurations, fresh_postgres  # noqa: E402
from bench.results import write_section  # noqa: E402

FIELDS = [
    {"target": "id", "source": "id"},
    {"target": "status", "source": "status"},
    {"target": "patient", "source": "subject.reference"},
    {"target": "test", "source": "code.text"},
    {"target": "value", "source": "valueQuantity.value", "type": "decimal"},
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    body = payload_1kb()
    lines = ["| config | bare view req/s | bare p50/p99 ms | sync req/s | sync p50/p99 ms | non-2xx |", "|---|---|---|---|---|---|"]
    for name, env in configurations(None).items():
        if name == "postgres":
            fresh_postgres()
        with running(env) as server:
            fj = server.create("formats", {"name": "json", "kind": "json", "options": {}})
            listener = server.create("listeners", {"name": "sync", "path": "sync", "mode": "sync", "auth": "token"})
            server.create("flows", {"name": "sync", "listener": listener["id"], "source_format": fj["id"], "trigger": "event",
                                    "enabled": True, "mapping": {"fields": FIELDS},
                                    "destination": {"connection": None, "format": fj["id"], "options": {}}})
            wrk(server.base + "/listen/sync", server.token, body, 8, 2)
            base = wrk(server.base + "/bench/bare", server.token, body, 8, args.seconds)
            sync = wrk(server.base + "/listen/sync", server.token, body, 8, args.seconds)
        lines.append(f"| {name} | {base['rps']:.0f} | {base['p50_ms']:.1f} / {base['p99_ms']:.1f} | {sync['rps']:.0f} | "
                     f"{sync['p50_ms']:.1f} / {sync['p99_ms']:.1f} | {sync['non2xx'] + sync['socket_errors']} |")
    text = "\n".join(lines)
    write_section("sync", f"Sync round trip, 5-field JSON mapping, 8 connections ({args.seconds}s each)", text,
                  f"commit {commit()}, {os.cpu_count()} cores")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
