"""Peak memory of a flow run as the payload grows: 10 MB against 100 MB (DESIGN §4).

A CSV payload mapped to JSON Lines, and a JSON Lines payload mapped to CSV, each written
to a folder connection, and a CSV payload stored as rows in a SQLite database connection
(`csv-db`: the table created from the mapping, rows in chunks in one transaction), run
by the engine in a fresh process per measurement with the payload read from its file
(as the runner reads a large stored body). Three ways in the same run: the bare codec
read of the payload (the floor), the engine mapping every record before writing
(`stream=False`, the former way: the baseline) and the engine as the async runner calls
it (records streamed to a spool file or in chunks to the database, the output not kept).
Target: the streamed run's peak at 100 MB within 20% of its peak at 10 MB.

    .venv/bin/python bench/flow_memory.py [--sizes 10,100] [--kinds csv,jsonl,csv-db]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KINDS = ("csv", "jsonl", "csv-db")
WAYS = ("read", "collected", "streamed")
MAPPINGS = {
    "csv": {"fields": [{"target": "id", "source": "id", "type": "integer"}, {"target": "name", "source": "name"},
                       {"target": "city", "source": "city"}, {"target": "amount", "source": "amount", "type": "decimal"},
                       {"target": "note", "source": "note"}]},
    "csv-db": {"fields": [{"target": "id", "source": "id", "type": "integer"}, {"target": "name", "source": "name"},
                          {"target": "city", "source": "city"},
                          {"target": "amount", "source": "amount", "type": "decimal"}, {"target": "note", "source": "note"}]},
    "jsonl": {"fields": [{"target": "id", "source": "id", "type": "integer"}, {"target": "name", "source": "name"},
                         {"target": "city", "source": "address.city"},
                         {"target": "amount", "source": "amount", "type": "decimal"},
                         {"target": "tag", "source": "tags[0]"}]},
}


def child(kind: str, way: str, path: str, out: str) -> None:
    """Run once; print records, seconds and peak memory (KB) as JSON."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from connections.models import Connection
    from flows.engine import execute
    from flows.models import Flow
    from formats.models import Format

    # Unsaved rows: the engine needs no database for a flow without lookup tables.
    reads_csv = kind.startswith("csv")
    source = Format(name="in", kind="csv" if reads_csv else "json",
                    options={"header": True} if reads_csv else {"lines": True})
    destination = Format(name="out", kind="json" if reads_csv else "csv",
                         options={"lines": True} if reads_csv else {"header": True})
    if kind == "csv-db":
        connection = Connection(name="out", kind="database", options={"url": f"sqlite:///{Path(out) / 'out.sqlite3'}"})
        destination_options = {"table": way, "create_table": True}
    else:
        connection = Connection(name="out", kind="folder", options={"path": out})
        destination_options = {"file_name": "{message_id}.out"}
    flow = Flow(name="memory", source_format=source, destination_format=destination, mapping=MAPPINGS[kind],
                destination_connection=connection, destination_options=destination_options, on_error="reject_record")
    started = time.perf_counter()
    with open(path, "rb") as body:
        if way == "read":
            records = sum(1 for _ in source.read(body))
        else:
            result = execute(flow, body, message_id=way, keep_output=False, stream=way == "streamed")
            records = result.records_out
    seconds = time.perf_counter() - started
    print(json.dumps({"records": records, "seconds": seconds, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def digest(out: Path, kind: str, way: str) -> str:
    """The output of one way: the file's digest, or the table's rows' for a database destination."""
    sha = hashlib.sha256()
    if kind == "csv-db":
        with sqlite3.connect(out / "out.sqlite3") as db:
            for row in db.execute(f"SELECT id, name, city, amount, note FROM {way} ORDER BY id"):  # noqa: S608  a fixed name
                sha.update(repr(row).encode())
            db.execute(f"DROP TABLE {way}")
        return sha.hexdigest()
    path = out / f"{way}.out"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def measure(kind: str, way: str, path: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", kind, way, str(path), str(out)], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{kind} {way} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--child", nargs=4)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from bench.harness import commit
    from bench.parse import generate
    from bench.results import write_section

    sizes = [int(s) for s in args.sizes.split(",")]
    lines = ["| payload | MB | records | way | seconds | peak MB |", "|---|---|---|---|---|---|"]
    verdicts, failed = [], False
    with tempfile.TemporaryDirectory(prefix="pushflow-flow-memory-") as folder:
        out = Path(folder) / "out"
        out.mkdir()
        for kind in args.kinds.split(","):
            peaks: dict[tuple[str, int], float] = {}
            for size in sizes:
                path = Path(folder) / f"{kind}-{size}.dat"
                generate("csv" if kind == "csv-db" else kind, path, size)
                counts = set()
                for way in WAYS:
                    figures = measure(kind, way, path, out)
                    counts.add(figures["records"])
                    peaks[way, size] = figures["peak_kb"] / 1024
                    lines.append(f"| {kind} | {size} | {figures['records']} | {way} | {figures['seconds']:.1f} | "
                                 f"{peaks[way, size]:.0f} |")
                if len(counts) != 1:
                    failed = True
                    verdicts.append(f"- FAILED {kind} {size} MB: the ways counted different records: {sorted(counts)}")
                # Compared by digest: this process stays small, since a child started from it reports
                # at least its size as peak memory (Linux keeps the peak across exec).
                if digest(out, kind, "streamed") != digest(out, kind, "collected"):
                    failed = True
                    verdicts.append(f"- FAILED {kind} {size} MB: the streamed output differs from the collected one")
                path.unlink()
            if len(sizes) > 1:
                low, high = sizes[0], sizes[-1]
                for way in WAYS[1:]:
                    growth = peaks[way, high] / peaks[way, low]
                    verdicts.append(f"- {kind}, {way}: peak memory at {high} MB is {growth:.2f}x its peak at {low} MB")
                if peaks["streamed", high] > 1.2 * peaks["streamed", low]:
                    failed = True
                    verdicts.append(f"- FAILED {kind}: the streamed run's memory grows with the payload")
    body = "\n".join(lines + ["", *verdicts])
    write_section("flow_memory", "Flow run peak memory as the payload grows (fresh process each, folder or SQLite destination)",
                  body, f"commit {commit()}, {os.cpu_count()} cores")
    print(body)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
