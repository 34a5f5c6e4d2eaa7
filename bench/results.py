"""bench/RESULTS.md: one section per benchmark, replaced in place on each run."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nWritten by `make bench`. Ratios matter more than absolute numbers: the machines are shared.\n"


def write_section(key: str, title: str, body: str, machine: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"<!-- {key} -->\n## {title}\n\n{machine}, {when}\n\n{body}\n<!-- /{key} -->\n"
    pattern = re.compile(rf"<!-- {re.escape(key)} -->.*?<!-- /{re.escape(key)} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
