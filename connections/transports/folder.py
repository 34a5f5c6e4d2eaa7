"""Folder transport: atomic file writes under a root folder, named by a template."""
from __future__ import annotations

import os
import re
import string
import tempfile
from collections.abc import Iterable
from pathlib import Path

from . import Delivery, SourceItem, Transport, TransportError, register_transport

_UNSAFE = re.compile(r"[\x00-\x1f/\\]")


def render_file_name(template: str, placeholders: dict) -> str:
    """Fill `{message_id}`-style placeholders; values cannot add folders."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    missing = [n for n in names if n not in placeholders]
    if missing:
        known = ", ".join("{" + k + "}" for k in sorted(placeholders))
        raise TransportError(f"unknown placeholder {{{missing[0]}}} in file name {template!r}; known: {known}")
    safe = {k: _UNSAFE.sub("_", str(v)) for k, v in placeholders.items()}
    try:
        return template.format_map(safe)
    except (ValueError, IndexError) as exc:
        raise TransportError(f"file name template {template!r} is not valid: {exc}") from None


def resolve_inside(root: Path, relative: str) -> Path:
    """`root / relative`, refusing anything that would leave `root` (.., absolute, links)."""
    if not relative or relative.startswith(("/", "\\")) or os.path.isabs(relative):
        raise TransportError(f"file name {relative!r} must be a relative name inside the folder")
    root = root.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise TransportError(f"file name {relative!r} leaves the connection's folder")
    return target


def write_atomically(target: Path, data: bytes | Iterable[bytes]) -> None:
    """Write to a temporary file beside `target`, flush to disk, then rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".pushflow-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in [data] if isinstance(data, bytes) else data:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


@register_transport
class FolderTransport(Transport):
    kind = "folder"
    label = "Folder"
    accepts_file = True
    options_schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "minLength": 1, "title": "Folder path on the server"}},
        "required": ["path"],
        "additionalProperties": True,
    }
    destination_options_schema = {
        "type": "object",
        "properties": {
            "file_name": {"type": "string", "minLength": 1, "default": "{message_id}.out"},
            "mode": {"enum": ["file", "append"], "default": "file"},
        },
    }

    def write(self, options, secrets, destination, delivery: Delivery) -> str:
        root = Path(options["path"])
        name = render_file_name(destination.get("file_name") or "{message_id}.out", delivery.placeholders)
        target = resolve_inside(root, name)
        try:
            if destination.get("mode") == "append":
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "ab") as f:
                    for chunk in delivery.chunks():
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
            else:
                write_atomically(target, delivery.chunks())
        except OSError as exc:
            raise TransportError(f"cannot write {name!r} in the folder: {exc.strerror}", retryable=True) from None
        return f"wrote {delivery.size} bytes to {name}"

    source_options_schema = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "default": "*", "title": "Files to read (glob, in the folder itself)"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
            "processed": {"type": "string", "default": "processed", "title": "Sub-folder read files move to"},
        },
    }

    def read(self, options, secrets, source):
        """The folder's matching files, oldest first; each moves to `processed/` once stored."""
        root = Path(options["path"]).resolve()
        if not root.is_dir():
            raise TransportError(f"folder {root} does not exist")
        processed = resolve_inside(root, source.get("processed") or "processed")
        pattern = source.get("pattern") or "*"
        if "/" in pattern or "\\" in pattern or ".." in pattern:
            raise TransportError(f"pattern {pattern!r} must name files in the folder itself")
        files = sorted((p for p in root.glob(pattern) if p.is_file() and not p.is_symlink() and not p.name.startswith(".")),
                       key=lambda p: (p.stat().st_mtime, p.name))
        for path in files[: int(source.get("limit") or 100)]:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise TransportError(f"cannot read {path.name!r}: {exc.strerror}", retryable=True) from None

            def done(path=path):
                processed.mkdir(parents=True, exist_ok=True)
                os.replace(path, processed / path.name)

            yield SourceItem(path.name, data, "", done)

    def test(self, options, secrets) -> str:
        root = Path(options["path"])
        if not root.is_dir():
            raise TransportError(f"folder {root} does not exist")
        if not os.access(root, os.W_OK):
            raise TransportError(f"folder {root} is not writable by the Pushflow process")
        return f"folder {root} exists and is writable"
