"""Payload-to-run latency: how long after its 202 a message starts and finishes running.

Two loads, on the embedded default and on PostgreSQL + Redis: messages posted one at
a time with a short pause (an idle system), then steady streams (wrk with paced
connections) at half of two capacities measured a moment before: the ingest capacity
(answers per second under a flood) and the run capacity (messages run per second, from
the flood's start until its last message finished). Where runs are slower than ingest,
a stream at half the ingest capacity outruns the worker and its delays only grow. The
delay is read from each message's `received_at` and its run's `started_at` / `finished_at`.

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


def measure(server, listener_id: int, count: int, warm_up: int = 20) -> tuple[list[float], list[float]]:
    """Start and finish delays of `count` messages posted one at a time, after `warm_up` more
    whose delays are not kept and which are waited for: the web answers as soon as it is up,
    while the worker may still be starting (its first runs then waited up to half a second)."""
    import json
    import urllib.request

    body = payload_1kb().encode()

    def post() -> str:
        req = urllib.request.Request(server.base + "/listen/bench", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            message_id = json.loads(r.read())["message_id"]
        time.sleep(0.05)
        return message_id

    for _ in range(warm_up):
        post()
    server.wait_idle(listener_id)
    ids = [post() for _ in range(count)]
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


LOAD_CONNECTIONS = 16


def capacities(server, listener_id: int) -> tuple[float, float]:
    """(ingest capacity in req/s, run capacity in messages/s): a 5 s flood of 32 connections,
    then the time until every message of it has run. Below the run capacity a steady stream
    can go on for ever; above it the queue grows without end."""
    started = time.monotonic()
    flood = wrk(server.base + "/listen/bench", server.token, payload_1kb(), 32, 5)
    server.wait_idle(listener_id)
    return flood["rps"], flood["ok"] / (time.monotonic() - started)


def measure_paced(server, listener_id: int, rate: float, seconds: int) -> tuple[float, list[float], list[float]]:
    """A stream paced at about `rate` req/s; (achieved rate, start delays, finish delays) of its messages."""
    since = server.now()
    # Each connection sends, waits for its answer, then pauses: rate ~ connections / (pause + answer time).
    delay_ms = max(1, int(LOAD_CONNECTIONS * 1000 / rate) - 2)
    paced = wrk(server.base + "/listen/bench", server.token, payload_1kb(), LOAD_CONNECTIONS, seconds, delay_ms=delay_ms)
    server.wait_idle(listener_id)
    rows = server.run_delays(since)
    return paced["rps"], [r[0] for r in rows], [r[1] for r in rows]


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {percentile(values, 99):.0f} / {max(values):.0f}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    idle = ["| config | messages | to run start p50 / p95 / max ms | to run finished p50 / p95 / max ms |", "|---|---|---|---|"]
    loaded = ["| config | paced at half of | capacity /s | paced req/s | messages | to run start p50 / p99 / max ms | "
              "to run finished p50 / p99 / max ms |", "|---|---|---|---|---|---|---|"]
    for name, env in configurations(None).items():
        if name == "postgres":
            fresh_postgres()
        with running(env) as server:
            listener_id = setup_flow(server)
            start, finish = measure(server, listener_id, args.count)
            ingest_capacity, run_capacity = capacities(server, listener_id)
            for basis, capacity in (("ingest capacity", ingest_capacity), ("run capacity", run_capacity)):
                rate, loaded_start, loaded_finish = measure_paced(server, listener_id, capacity / 2, args.seconds)
                loaded.append(f"| {name} | {basis} | {capacity:.0f} | {rate:.0f} | {len(loaded_start)} | "
                              f"{summary(loaded_start)} | {summary(loaded_finish)} |")
        idle.append(f"| {name} | {len(start)} | {statistics.median(start):.0f} / {percentile(start, 95):.0f} / {max(start):.0f} | "
                    f"{statistics.median(finish):.0f} / {percentile(finish, 95):.0f} / {max(finish):.0f} |")
    text = "\n".join(["One message at a time (idle system):", "", *idle, "",
                      f"A steady stream at about half of a capacity measured just before ({LOAD_CONNECTIONS} paced "
                      f"connections, {args.seconds}s each). Ingest capacity: req/s a 32-connection flood gets answered. "
                      "Run capacity: messages of that flood run per second, from its start until the last one finished "
                      "(what the system sustains end to end).", "", *loaded])
    write_section("latency", "Payload to run latency", text, f"commit {commit()}, {os.cpu_count()} cores")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
