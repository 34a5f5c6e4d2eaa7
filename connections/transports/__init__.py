"""The transport registry. A transport delivers a flow's output bytes (and later reads).

Each transport module defines one `Transport` subclass registered with
`@register_transport`; adding a connection kind is one module plus one import line.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

from lib.registry import Registry


class TransportError(Exception):
    """A delivery that failed, with a reason a person can act on. Never holds secrets."""

    def __init__(self, reason: str, retryable: bool = False):
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


@dataclass(frozen=True)
class Delivery:
    """One output to deliver: its bytes (or, for a large streamed run, a seekable `file`
    holding them, with `data` empty) and what a transport may name it by."""

    data: bytes
    content_type: str
    placeholders: dict = field(default_factory=dict)
    # The mapped records themselves, for transports that store rows rather than bytes.
    records: list = field(default_factory=list)
    fields: list = field(default_factory=list)
    field_types: dict = field(default_factory=dict)
    file: BinaryIO | None = None

    @property
    def size(self) -> int:
        if self.file is None:
            return len(self.data)
        return self.file.seek(0, 2)

    def chunks(self, size: int = 1 << 16) -> Iterator[bytes]:
        """The output in pieces, from its start (each call reads it again)."""
        if self.file is None:
            yield self.data
            return
        self.file.seek(0)
        while chunk := self.file.read(size):
            yield chunk


@dataclass(frozen=True)
class SourceItem:
    """One payload a timed flow read from its source; `done()` once it is safely stored."""

    name: str
    data: bytes
    content_type: str = ""
    done: Callable[[], None] = lambda: None
    # What to remember for the next read once this item is stored (e.g. a watermark).
    state: dict | None = None


class RowSink:
    """A run's rows on their way into a store, in one transaction: a context manager whose
    `write(records)` takes a chunk at a time; leaving it without an exception commits every
    chunk, leaving it with one (the run failed) rolls every chunk back. `summary` then says
    what was stored, for the run log. Raises TransportError."""

    summary: str = ""

    def __enter__(self) -> RowSink:
        return self

    def __exit__(self, *failure) -> None:
        raise NotImplementedError

    def write(self, records: list[dict]) -> None:
        raise NotImplementedError


class Transport:
    kind: ClassVar[str]
    label: ClassVar[str]
    options_schema: ClassVar[dict]
    destination_options_schema: ClassVar[dict] = {"type": "object"}
    secret_options: ClassVar[tuple[str, ...]] = ()
    # True when `write` reads a delivery's output from `delivery.file` (a run streamed to a
    # spool file); transports that need the records or the bytes in memory leave it False.
    accepts_file: ClassVar[bool] = False

    # True when the transport stores records as rows through `open_rows`, so the engine hands
    # it mapped records in bounded chunks as they come instead of collecting them all first.
    stores_rows: ClassVar[bool] = False

    def write(self, options: dict, secrets: dict, destination: dict, delivery: Delivery) -> str:
        """Deliver; return a short description of where it went (for the run log)."""
        raise NotImplementedError

    def open_rows(self, options: dict, secrets: dict, destination: dict, fields: list[str],
                  field_types: dict) -> RowSink:
        """A sink taking a run's records in chunks, in one transaction (transports with `stores_rows`)."""
        raise NotImplementedError

    source_options_schema: ClassVar[dict] = {"type": "object"}

    def read(self, options: dict, secrets: dict, source: dict) -> Iterator[SourceItem]:
        """Payloads for a timed flow (a file each, a reply...); transports that cannot read raise."""
        raise TransportError(f"a {self.label} connection cannot be read by a timed flow")

    def test(self, options: dict, secrets: dict) -> str:
        """Check the connection works; return what was checked, or raise TransportError."""
        raise NotImplementedError


transports: Registry[Transport] = Registry("connection")


def register_transport(cls: type[Transport]) -> type[Transport]:
    transports.register(cls())
    return cls


from . import database, folder, http  # noqa: E402,F401  registration
