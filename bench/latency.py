"""Payload-to-run latency: how long after its 202 a message starts and finishes running.

Two loads, on the embedded default and on PostgreSQL + Redis: messages posted one at
a time with a short pause (an idle system), then a steady stream at half of the
capacity measured a moment before (wrk with paced connections). The delay is read
from each message's `received_at` and its run's `started_at` / `finished_at`.

    .venv/bin/python bench/latency.py [--count 100] [--seconds 10]
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
from bench.harness import commit, payload_1kb, running, wrk  # noqa: E402
from bench.ingest import configurations, fresh_postgres, setup_flow  # noqa: E402
from bench.results import write_section  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(server, count: int, warm_up: int = 20) -> tuple[list[float], list[float]]:
    """Start and finish delays of `count` messages posted one at a time, after `warm_up` more
    whose delays are not kept: the worker may still be starting when the web answers first."""
    import json
    import urllib.request

    body = payload_1kb().encode()
    ids = []
    for _ in range(warm_up + count):
        req = urllib.request.Request(server.base + "/listen/bench", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            ids.append(json.loads(r.read())["message_id"])
        time.sleep(0.05)
    start, finish = [], []
    for position, message_id in enumerate(ids):
        deadline = time.time() + 60
        while True:
            message = server.call("GET", f"/api/v1/messages/{message_id}/")
            if message["status"] in ("succeeded", "failed") or time.time() > deadline:
                break
            time.sleep(0.1)
        if position < warm_up:
            continue
        received = datetime.fromisoformat(message["received_at"])
        run = message["runs"][0]
        start.append((datetime.fromisoformat(run["started_at"]) - received).total_seconds() * 1000)
        finish.append((datetime.fromisoformat(run["finished_at"]) - received).total_seconds() * 1000)
    return start, finish


LOAD_CONNECTIONS = 16


def measure_loaded(server, listener_id: int, seconds: int) -> tuple[float, float, list[float], list[float]]:
    """Capacity (req/s, flood of 32 connections), then a paced stream at half of it; returns
    (capacity, achieved rate, start delays, finish delays) of the paced messages."""
    body = payload_1kb()
    url = server.base + "/listen/bench"
    capacity = wrk(url, server.token, body, 32, 5)["rps"]
    server.wait_idle(listener_id)
    since = server.now()
    # Each connection sends, waits for its answer, then pauses: rate ~ connections / (pause + answer time).
    delay_ms = max(1, int(LOAD_CONNECTIONS * 1000 / (capacity / 2)) - 2)
    paced = wrk(url, server.token, body, LOAD_CONNECTIONS, seconds, delay_ms=delay_ms)
    server.wait_idle(listener_id)
    rows = server.run_delays(since)
    return capacity, paced["rps"], [r[0] for r in rows], [r[1] for r in rows]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {percentile(values, 99):.0f} / {max(values):.0f}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    idle = ["| config | messages | to run start p50 / p95 / max ms | to run finished p50 / p95 / max ms |", "|---|---|---|---|"]
    loaded = ["| config | capacity req/s | paced req/s | messages | to run start p50 / p99 / max ms | "
              "to run finished p50 / p99 / max ms |", "|---|---|---|---|---|---|"]
    for name, env in configurations(None).items():
        if name == "postgres":
            fresh_postgres()
        with running(env) as server:
            listener_id = setup_flow(server)
            start, finish = measure(server, args.count)
            capacity, rate, loaded_start, loaded_finish = measure_loaded(server, listener_id, args.seconds)
        idle.append(f"| {name} | {len(start)} | {statistics.median(start):.0f} / {percentile(start, 95):.0f} / {max(start):.0f} | "
                    f"{statistics.median(finish):.0f} / {percentile(finish, 95):.0f} / {max(finish):.0f} |")
        loaded.append(f"| {name} | {capacity:.0f} | {rate:.0f} | {len(loaded_start)} | {summary(loaded_start)} | "
                      f"{summary(loaded_finish)} |")
    text = "\n".join(["One message at a time (idle system):", "", *idle, "",
                      f"A steady stream at about half of the capacity measured just before ({LOAD_CONNECTIONS} paced "
                      f"connections, {args.seconds}s):", "", *loaded])
    write_section("latency", "Payload to run latency", text, f"commit {commit()}, {os.cpu_count()} cores")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
