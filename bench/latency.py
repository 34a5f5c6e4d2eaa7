"""Payload-to-run latency: how long after its 202 a message starts and finishes running.

Messages are posted one at a time with a short pause (an idle system), on the
embedded default and on PostgreSQL + Redis; the delay is read from the message's
`received_at` and its run's `started_at` / `finished_at`. The embedded broker
polls its folder, so its delay is mostly that poll interval (50 ms by default).

    .venv/bin/python bench/latency.py [--count 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import commit, payload_1kb, running  # noqa: E402
from bench.ingest import configurations, fresh_postgres, setup_flow  # noqa: E402
from bench.results import write_section  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(server, count: int) -> tuple[list[float], list[float]]:
    import json
    import urllib.request

    body = payload_1kb().encode()
    ids = []
    for _ in range(count):
        req = urllib.request.Request(server.base + "/listen/bench", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            ids.append(json.loads(r.read())["message_id"])
        time.sleep(0.05)
    start, finish = [], []
    for message_id in ids:
        deadline = time.time() + 60
        while True:
            message = server.call("GET", f"/api/v1/messages/{message_id}/")
            if message["status"] in ("succeeded", "failed") or time.time() > deadline:
                break
            time.sleep(0.1)
        received = datetime.fromisoformat(message["received_at"])
        run = message["runs"][0]
        start.append((datetime.fromisoformat(run["started_at"]) - received).total_seconds() * 1000)
        finish.append((datetime.fromisoformat(run["finished_at"]) - received).total_seconds() * 1000)
    return start, finish


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    lines = ["| config | messages | to run start p50 / p95 / max ms | to run finished p50 / p95 / max ms |", "|---|---|---|---|"]
    for name, env in configurations(None).items():
        if name == "postgres":
            fresh_postgres()
        with running(env) as server:
            setup_flow(server)
            start, finish = measure(server, args.count)
        lines.append(f"| {name} | {len(start)} | {statistics.median(start):.0f} / {percentile(start, 95):.0f} / {max(start):.0f} | "
                     f"{statistics.median(finish):.0f} / {percentile(finish, 95):.0f} / {max(finish):.0f} |")
    text = "\n".join(lines)
    write_section("latency", "Payload to run latency, one message at a time (idle system)", text,
                  f"commit {commit()}, {os.cpu_count()} cores")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
