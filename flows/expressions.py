"""JSONata expressions for mapping fields (`expr`) and record filters (`filter`).

JSONata is what Node-RED, AWS Step Functions and IBM App Connect users already
write (DESIGN §2). Evaluated by jsonata-rs, a Rust port of the reference
jsonata-java, chosen over the pure-Python port (same answers on our checks,
about 13x faster per evaluation). Every evaluation is bounded in time and
recursion depth, so a user's expression cannot hang a worker.

Beside JSONata's own library an expression sees:
- `$payload` the whole payload tree, `$message` the message's metadata
  (`id`, `received_at`, `listener`, `headers`), `$parent` the element holding the
  current record (with `records`);
- `$lookup(table, key)` a flow lookup table (with an object as first argument it is
  JSONata's own `$lookup`), `$coalesce(a, b, ...)` the first non-empty value,
  `$parseDate(text, format)` a strptime pattern to ISO 8601,
  `$formatDate(iso, format)` ISO 8601 to a strftime pattern,
  `$toTimeZone(iso, zone)` a date-time moved to an IANA time zone.
Only the variables an expression names are handed to it (handing it a large
payload on every record would cost more than the expression).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonata

TIMEOUT_MS = 250
MAX_DEPTH = 200
MAX_LENGTH = 10_000
_VARIABLE = re.compile(r"\$(payload|message|parent)\b")


class ExpressionError(Exception):
    """An expression that cannot compile or evaluate; `position` is a character offset when known."""

    def __init__(self, reason: str, position: int | None = None):
        self.reason = reason
        self.position = position
        super().__init__(reason)


@dataclass
class Scope:
    """What one record's expressions may see beside the record itself."""

    payload: Any = None
    message: dict = field(default_factory=dict)
    parent: Any = None
    # How the source codec shows a value to expressions (HL7 v2: single repetitions collapsed).
    view: Callable[[Any], Any] | None = None


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _coalesce(*values):
    return next((v for v in values if not _is_empty(v)), None)


def _parse_date(text, fmt=None):
    if _is_empty(text):
        return None
    text = str(text).strip()
    try:
        parsed = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text[:40]!r} does not match {fmt or 'ISO 8601'}") from None
    if fmt and not any(code in fmt for code in ("%H", "%I", "%M", "%S", "%z")):
        return parsed.date().isoformat()
    return parsed.isoformat()


def _format_date(text, fmt):
    if _is_empty(text):
        return None
    try:
        parsed = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{str(text)[:40]!r} is not an ISO 8601 date") from None
    return parsed.strftime(str(fmt))


def _to_time_zone(text, zone):
    if _is_empty(text):
        return None
    try:
        tz = ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}") from None
    try:
        parsed = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{str(text)[:40]!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{str(text)[:40]!r} has no UTC offset to convert from")
    return parsed.astimezone(tz).isoformat()


@dataclass
class Expression:
    """A compiled expression; `evaluate` is safe to call from several threads."""

    text: str
    _compiled: Any
    _names: tuple[str, ...]

    def evaluate(self, record: Any, scope: Scope) -> Any:
        view = scope.view
        bindings = None
        if self._names:
            bindings = {name: getattr(scope, name) for name in self._names}
            if view is not None:
                bindings = {k: (v if k == "message" else view(v)) for k, v in bindings.items()}
        try:
            return self._compiled.evaluate(record if view is None else view(record), bindings)
        except jsonata.JsonataError as exc:
            raise ExpressionError(_reason(exc), getattr(exc, "position", None)) from None
        except (ValueError, TypeError, ArithmeticError, OverflowError) as exc:
            raise ExpressionError(str(exc) or exc.__class__.__name__) from None


def _reason(exc: Exception) -> str:
    code = getattr(exc, "code", "")
    text = str(exc)
    for prefix in ("ValueError: ", "TypeError: "):  # raised by one of our functions: its words suffice
        if text.startswith(prefix):
            return text[len(prefix):]
    if code == "STACK_OVERFLOW" or "timeout" in text.lower() or "time limit" in text.lower():
        return f"stopped: the expression ran too long or too deep ({text})"
    return f"{text} ({code})" if code and code not in text else text


def compile_expression(text: Any, lookups: dict | None = None) -> Expression:
    """Compile `text`; `lookups` are the flow's tables that `$lookup(table, key)` reads."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression must be a non-empty string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"an expression may be at most {MAX_LENGTH} characters")
    try:
        compiled = jsonata.Jsonata(text)
    except jsonata.JsonataError as exc:
        position = getattr(exc, "position", None)
        where = f" at character {position}" if isinstance(position, int) and position >= 0 else ""
        raise ExpressionError(f"syntax error{where}: {exc}", position) from None
    compiled.set_runtime_bounds(TIMEOUT_MS, MAX_DEPTH)
    expression = Expression(text, compiled, tuple(sorted(set(_VARIABLE.findall(text)))))
    tables = lookups or {}

    def lookup(table, key=None):
        if isinstance(table, dict):  # JSONata's own $lookup(object, key)
            return table.get(key)
        found = tables.get(str(table))
        if found is None:
            raise ValueError(f"no lookup table named {table!r}")
        return found.get(str(key)) if key is not None else None

    functions: dict[str, Callable] = {
        "lookup": lookup, "coalesce": _coalesce, "parseDate": _parse_date, "formatDate": _format_date,
        "toTimeZone": _to_time_zone,
    }
    for name, function in functions.items():
        compiled.register_function(name, function)
    return expression


FUNCTIONS = ("lookup", "coalesce", "parseDate", "formatDate", "toTimeZone")
