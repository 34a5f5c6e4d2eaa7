"""Parse speed and memory: the CSV, XML and JSON Lines codecs against bare library loops.

For each kind, a 10 MB and a 100 MB file is generated in a temporary folder (never
kept), then read in a fresh process per measurement: once by the codec (every record
built as the mapping sees it) and once by the baseline (the bare stdlib csv reader,
bare lxml iterparse, bare orjson per line). Each process reports its time and its peak
resident memory. Targets: the codec at least 50% of the baseline's MB/s, and the
codec's peak memory for 100 MB within 20% of its peak for 10 MB (it streams).

The machines are shared, so each pair is measured `--repeat` times, alternating baseline
and codec, and the best time of each is kept (noise only ever adds time); times are the
process's CPU time (user + system), which other processes on the machine disturb less
than the wall clock does.

    .venv/bin/python bench/parse.py [--sizes 10,100] [--kinds csv,xml,jsonl] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KINDS = ("csv", "xml", "jsonl")


def generate(kind: str, path: Path, megabytes: int) -> None:
    target = megabytes * 1024 * 1024
    with open(path, "wb") as f:
        if kind == "csv":
            f.write(b"id,name,city,amount,note\r\n")
        elif kind == "xml":
            f.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<rows>\n')
        i = 0
        while f.tell() < target:
            name, city, amount = f"Name {i % 1000}", f"City {i % 97}", f"{i % 10000}.{i % 100:02d}"
            if kind == "csv":
                f.write(f'{i},{name},{city},{amount},"a note, with a comma {i}"\r\n'.encode())
            elif kind == "xml":
                f.write(f'<row id="{i}"><name>{name}</name><city>{city}</city><amount>{amount}</amount>'
                        f"<note>a note {i}</note></row>\n".encode())
            else:
                f.write(json.dumps({"id": i, "name": name, "address": {"city": city}, "amount": amount,
                                    "tags": ["a", "b"]}).encode() + b"\n")
            i += 1
        if kind == "xml":
            f.write(b"</rows>\n")


def child(kind: str, impl: str, path: str) -> None:
    """Read `path` once; print records, seconds and peak memory (KB) as JSON."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    started = time.process_time()
    count = 0
    if impl == "codec":
        from formats.codecs import codecs

        codec = codecs.get("json" if kind == "jsonl" else kind)
        options = {"csv": {"header": True}, "xml": {"record": "row"}, "jsonl": {"lines": True}}[kind]
        started = time.process_time()
        with open(path, "rb") as f:
            for _ in codec.read(f, options):
                count += 1
    elif kind == "csv":
        import csv

        with open(path, newline="", encoding="utf-8") as f:
            for _ in csv.reader(f):
                count += 1
        count -= 1  # the header
    elif kind == "xml":
        from lxml import etree

        for _, element in etree.iterparse(path, tag="row", resolve_entities=False, no_network=True):
            count += 1
            element.clear(keep_tail=True)
            while element.getprevious() is not None:
                del element.getparent()[0]
    else:
        import orjson

        with open(path, "rb") as f:
            for line in f:
                orjson.loads(line)
                count += 1
    seconds = time.process_time() - started
    print(json.dumps({"records": count, "seconds": seconds, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def measure(kind: str, impl: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, impl, str(path)], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_pair(kind: str, path: Path, repeat: int) -> tuple[dict, dict]:
    """Baseline and codec, alternated `repeat` times: the best time, the highest peak."""
    runs: dict[str, list[dict]] = {"baseline": [], "codec": []}
    for _ in range(repeat):
        for impl in runs:
            runs[impl].append(measure(kind, impl, path))
    return tuple({"records": results[0]["records"], "seconds": min(r["seconds"] for r in results),
                  "peak_kb": max(r["peak_kb"] for r in results)} for results in runs.values())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from bench.harness import commit
    from bench.results import write_section

    sizes = [int(s) for s in args.sizes.split(",")]
    lines = ["| kind | MB | baseline MB/CPU-s | codec MB/CPU-s | ratio | baseline peak MB | codec peak MB |",
             "|---|---|---|---|---|---|---|"]
    verdicts, failed = [], False
    with tempfile.TemporaryDirectory(prefix="pushflow-parse-") as folder:
        for kind in args.kinds.split(","):
            peaks = {}
            for size in sizes:
                path = Path(folder) / f"{kind}-{size}.dat"
                generate(kind, path, size)
                megabytes = path.stat().st_size / 1024 / 1024
                base, codec = measure_pair(kind, path, args.repeat)
                if base["records"] != codec["records"]:
                    failed = True
                    verdicts.append(f"- FAILED {kind} {size} MB: codec read {codec['records']} records, baseline {base['records']}")
                ratio = (megabytes / codec["seconds"]) / (megabytes / base["seconds"])
                peaks[size] = codec["peak_kb"] / 1024
                lines.append(f"| {kind} | {size} | {megabytes / base['seconds']:.1f} | {megabytes / codec['seconds']:.1f} | "
                             f"{ratio:.2f}x | {base['peak_kb'] / 1024:.0f} | {peaks[size]:.0f} |")
                path.unlink()
            if len(sizes) > 1:
                growth = peaks[sizes[-1]] / peaks[sizes[0]]
                verdicts.append(f"- {kind}: codec peak memory at {sizes[-1]} MB is {growth:.2f}x its peak at {sizes[0]} MB")
    body = "\n".join(lines + ["", *verdicts])
    write_section("parse", "Parse throughput and peak memory (codec vs bare library loop, fresh process each)", body,
                  f"commit {commit()}, {os.cpu_count()} cores, best of {args.repeat} runs each")
    print(body)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
