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
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonata

# The lookup tables of the run under way, database tables read (see flows/lookups.py).
RUN_TABLES: ContextVar[dict | None] = ContextVar("pushflow_lookup_tables", default=None)
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


_UNDEFINED = object()


class _Fallback(Exception):
    """The native shortcut cannot answer for this record: JSONata decides."""


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH = rf"{_NAME}(?:\[\d+\])?(?:\.{_NAME}(?:\[\d+\])?)*"
_STRING = r"'[^'\\]*'|\"[^\"\\]*\""
_OPERAND = re.compile(rf"\s*(?:(?P<path>{_PATH})|(?P<string>{_STRING}))\s*")
_COMPARISON = re.compile(rf"^\s*(?P<path>{_PATH})\s*(?P<op>>=|<=|!=|>|<|=)\s*(?P<number>-?\d+(?:\.\d+)?)\s*$")
_KEYWORDS = {"true", "false", "null", "and", "or", "in", "function"}
_STEP = re.compile(rf"^({_NAME})(?:\[(\d+)\])?$")
_OPERATORS = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
              "<=": lambda a, b: a <= b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _path_reader(path: str) -> Callable[[Any], Any] | None:
    steps = []
    for part in path.split("."):
        name, index = _STEP.match(part).groups()
        if name in _KEYWORDS:
            return None
        steps.append((name, int(index) if index is not None else None))

    def read(record: Any) -> Any:
        value = record
        for name, index in steps:
            if type(value) is not dict:
                raise _Fallback
            value = value.get(name, _UNDEFINED)
            if value is None or type(value) is list and not value:
                raise _Fallback  # null and [] have their own JSONata rules
            if index is not None and value is not _UNDEFINED:
                if type(value) is list:
                    value = value[index] if index < len(value) else _UNDEFINED
                elif index != 0:
                    value = _UNDEFINED
            if value is _UNDEFINED:
                return _UNDEFINED
        return value

    return read


def _native(text: str) -> Callable[[Any], Any] | None:
    """A plain-Python evaluator for the two shapes mappings use most (string joins of paths
    and literals, a path compared with a number), giving JSONata's answers; anything
    else, and any value outside the simple cases (numbers in a join, lists...), is left to
    JSONata. Measured in bench/mapping.py: JSONata's per-call conversion of the record
    dominated such expressions."""
    comparison = _COMPARISON.match(text)
    if comparison:
        read = _path_reader(comparison["path"])
        if read is None:
            return None
        number = float(comparison["number"]) if "." in comparison["number"] else int(comparison["number"])
        compare = _OPERATORS[comparison["op"]]
        equality = comparison["op"] in ("=", "!=")

        def compared(record: Any) -> Any:
            value = read(record)
            if value is _UNDEFINED:  # what the engine answers for a comparison with undefined
                return False if equality else None
            if type(value) not in (int, float):
                raise _Fallback
            return compare(value, number)

        return compared
    parts, position = [], 0
    while True:
        match = _OPERAND.match(text, position)
        if not match:
            return None
        if match["path"]:
            read = _path_reader(match["path"])
            if read is None:
                return None
            parts.append(read)
        else:
            literal = match["string"][1:-1]
            parts.append(lambda record, literal=literal: literal)
        position = match.end()
        if position == len(text):
            break
        if text[position] != "&":
            return None
        position += 1
    if len(parts) < 2:
        return None

    def joined(record: Any) -> str:
        out = []
        for part in parts:
            value = part(record)
            if value is _UNDEFINED:
                continue  # undefined joins as ""
            if type(value) is not str:
                raise _Fallback
            out.append(value)
        return "".join(out)

    return joined


@dataclass
class Expression:
    """A compiled expression; `evaluate` is safe to call from several threads."""

    text: str
    _compiled: Any
    _names: tuple[str, ...]
    _native: Callable[[Any], Any] | None = None

    def evaluate(self, record: Any, scope: Scope) -> Any:
        view = scope.view
        if self._native is not None and view is None:
            try:
                return self._native(record)
            except _Fallback:
                pass
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
    expression = Expression(text, compiled, tuple(sorted(set(_VARIABLE.findall(text)))), _native(text))
    static_tables = lookups or {}

    def lookup(table, key=None):
        if isinstance(table, dict):  # JSONata's own $lookup(object, key)
            return table.get(key)
        found = (RUN_TABLES.get() or static_tables).get(str(table))
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
