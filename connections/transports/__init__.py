"""The transport registry. A transport delivers a flow's output bytes (and later reads).

Each transport module defines one `Transport` subclass registered with
`@register_transport`; adding a connection kind is one module plus one import line.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from lib.registry import Registry


class TransportError(Exception):
    """A delivery that failed, with a reason a person can act on. Never holds secrets."""

    def __init__(self, reason: str, retryable: bool = False):
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)


@dataclass(frozen=True)
class Delivery:
    """One output to deliver: its bytes and what a transport may name it by."""

    data: bytes
    content_type: str
    placeholders: dict = field(default_factory=dict)
    # The mapped records themselves, for transports that store rows rather than bytes.
    records: list = field(default_factory=list)
    fields: list = field(default_factory=list)
    field_types: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SourceItem:
    """One payload a timed flow read from its source; `done()` once it is safely stored."""

    name: str
    data: bytes
    content_type: str = ""
    done: Callable[[], None] = lambda: None
    # What to remember for the next read once this item is stored (e.g. a watermark).
    state: dict | None = None


class Transport:
    kind: ClassVar[str]
    label: ClassVar[str]
    options_schema: ClassVar[dict]
    destination_options_schema: ClassVar[dict] = {"type": "object"}
    secret_options: ClassVar[tuple[str, ...]] = ()

    def write(self, options: dict, secrets: dict, destination: dict, delivery: Delivery) -> str:
        """Deliver; return a short description of where it went (for the run log)."""
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
