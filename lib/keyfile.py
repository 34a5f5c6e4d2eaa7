"""Secrets that the embedded default generates once and keeps under var/.

A real deployment sets them in the environment; a first `make run` on a laptop
must still have stable keys across restarts without anyone editing a file.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def read_or_create(path: Path, make: callable = lambda: secrets.token_urlsafe(50)) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode())
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return value
