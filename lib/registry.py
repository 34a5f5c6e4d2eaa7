"""A small registry of pluggable kinds (codecs, transports), keyed by `kind`."""
from __future__ import annotations

from typing import Generic, TypeVar

import jsonschema

T = TypeVar("T")


class UnknownKind(LookupError):
    pass


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        kind = entry.kind
        if kind in self._entries:
            raise ValueError(f"{self.what} {kind!r} registered twice")
        self._entries[kind] = entry
        return entry

    def get(self, kind: str) -> T:
        try:
            return self._entries[kind]
        except KeyError:
            raise UnknownKind(f"unknown {self.what} kind {kind!r}; known: {', '.join(sorted(self._entries))}") from None

    def kinds(self) -> list[str]:
        return sorted(self._entries)

    def choices(self) -> list[tuple[str, str]]:
        return [(kind, self._entries[kind].label) for kind in self.kinds()]

    def __contains__(self, kind: str) -> bool:
        return kind in self._entries


def options_errors(schema: dict, options) -> list[str]:
    """Readable JSON Schema violations of `options`, each prefixed by its path."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(options), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path)
        errors.append(f"{where}: {error.message}" if where else error.message)
    return errors
