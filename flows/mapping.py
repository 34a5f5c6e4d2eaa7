"""The mapping: compile a mapping document once, then apply it to record trees.

A mapping is `{"records"?, "filter"?, "fields": [...]}` (DESIGN §2). Compiling
checks every field and turns each into a small function, so a bad mapping fails
before any payload is touched, naming the field. Applying a field never raises
anything but `FieldError`, which names the field and says why.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .expressions import Expression, ExpressionError, Scope, compile_expression

TYPES = ("string", "integer", "decimal", "boolean", "date", "datetime")
_SEGMENT = re.compile(r"^(?P<name>[^\[\]]*)(?P<indexes>(\[(\d+|\*)\])*)$")
_INDEX = re.compile(r"\[(\d+|\*)\]")
_MISSING = object()
MAX_INTEGER_DIGITS = 100


class MappingError(Exception):
    """A mapping that cannot compile. `field` names the offending field (or "records"/"filter")."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class FieldError(Exception):
    """A record whose field cannot be produced."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"field {field!r}: {reason}")


@dataclass(frozen=True)
class Step:
    name: str
    indexes: tuple  # ints, or "*" for every element


@dataclass(frozen=True)
class Path:
    text: str
    from_root: bool
    steps: tuple[Step, ...]
    from_parent: bool = False

    def read(self, record: Any, root: Any, parent: Any = None) -> Any:
        """The value at this path, a list where `[*]` fans out, or _MISSING."""
        values, fanned = self.read_all(record, root, parent)
        if fanned:
            return values
        return values[0] if values else _MISSING

    def read_all(self, record: Any, root: Any, parent: Any = None) -> tuple[list, bool]:
        """Every value this path reaches, and whether a `[*]` fanned out."""
        base = root if self.from_root else parent if self.from_parent else record
        if base is None and self.from_parent:
            return [], False
        values = [base]
        fanned = False
        for step in self.steps:
            values = [v for v in (_child(value, step.name) for value in values) if v is not _MISSING]
            for index in step.indexes:
                nxt = []
                for value in values:
                    if not isinstance(value, list):
                        value = [value]  # a single element reads like a list of one
                    if index == "*":
                        nxt.extend(value)
                        fanned = True
                    elif index < len(value):
                        nxt.append(value[index])
                values = nxt
        return values, fanned


    def reader(self) -> Callable[[Any, Scope], Any]:
        """`read(record, scope)` as a closure, specialised when no step fans out (the common
        case: a mapping reads millions of records, and the general walk builds lists per step)."""
        if any(index == "*" for step in self.steps for index in step.indexes):
            return lambda record, scope: self.read(record, scope.payload, scope.parent)
        steps = tuple((step.name, step.indexes) for step in self.steps)
        from_root, from_parent = self.from_root, self.from_parent

        def read(record: Any, scope: Scope) -> Any:
            value = scope.payload if from_root else scope.parent if from_parent else record
            if value is None and from_parent:
                return _MISSING
            for name, indexes in steps:
                if type(value) is dict and name:
                    value = value.get(name, _MISSING)
                else:
                    value = _child(value, name)
                if value is _MISSING:
                    return _MISSING
                for index in indexes:
                    if isinstance(value, list):
                        if index >= len(value):
                            return _MISSING
                        value = value[index]
                    elif index != 0:
                        return _MISSING  # a single element reads like a list of one
            return value

        return read


def _child(value: Any, name: str) -> Any:
    if name == "":
        return value
    if isinstance(value, dict):
        return value.get(name, _MISSING)
    # A codec may give values that answer a step themselves (HL7 v2: a field without
    # components is its own component 1; an unindexed step reads the first repetition).
    path_child = getattr(value, "path_child", None)
    if path_child is not None:
        try:
            return path_child(name)
        except KeyError:
            return _MISSING
    return _MISSING


def parse_path(text: str, field: str = "") -> Path:
    if not isinstance(text, str) or not text.strip():
        raise MappingError(field, "a path must be a non-empty string")
    text = text.strip()
    from_root = from_parent = False
    body = text
    if body == "$":
        return Path(text, True, ())
    if body == "$parent":
        return Path(text, False, (), True)
    if body.startswith("$parent."):
        from_parent, body = True, body[len("$parent."):]
    elif body.startswith("$."):
        from_root, body = True, body[2:]
    steps = []
    for part in _split_dots(body):
        m = _SEGMENT.match(part)
        if not m or (not m.group("name") and not m.group("indexes")):
            raise MappingError(field, f"path {text!r} has an empty or malformed step {part!r}")
        indexes = tuple("*" if i == "*" else int(i) for i in _INDEX.findall(m.group("indexes")))
        steps.append(Step(m.group("name"), indexes))
    return Path(text, from_root, tuple(steps), from_parent)


def _split_dots(body: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in body:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


# --- types ---


def _is_empty(value: Any) -> bool:
    return value is _MISSING or value is None or value == "" or value == []


def _to_string(value, fmt):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise ValueError("is a structure, not a single value")
    return str(value)


def _to_integer(value, fmt):
    if isinstance(value, bool):
        raise ValueError("is a boolean")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text[:40]!r} is not an integer") from None
    if not number.is_finite():
        raise ValueError(f"{text[:40]!r} is not a finite number")
    if number.adjusted() > MAX_INTEGER_DIGITS:
        raise ValueError(f"{text[:40]!r} has more than {MAX_INTEGER_DIGITS} digits")
    if number != number.to_integral_value():
        raise ValueError(f"{text[:40]!r} is not a whole number")
    return int(number)


def _to_decimal(value, fmt):
    if isinstance(value, bool):
        raise ValueError("is a boolean")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _to_boolean(value, fmt):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean")


def _to_date(value, fmt):
    text = str(value).strip()
    try:
        if fmt:
            return datetime.strptime(text, fmt).date().isoformat()
        return date.fromisoformat(text[:10] if "T" in text else text).isoformat()
    except ValueError:
        raise ValueError(f"{text!r} is not a date" + (f" in format {fmt!r}" if fmt else " (ISO 8601)")) from None


def _to_datetime(value, fmt):
    text = str(value).strip()
    try:
        if fmt:
            return datetime.strptime(text, fmt).isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise ValueError(f"{text!r} is not a date-time" + (f" in format {fmt!r}" if fmt else " (ISO 8601)")) from None


CONVERTERS: dict[str, Callable[[Any, str | None], Any]] = {
    "string": _to_string,
    "integer": _to_integer,
    "decimal": _to_decimal,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
}


# --- compiled mapping ---


@dataclass(frozen=True)
class CompiledField:
    target: str
    produce: Callable[[Any, Scope], Any]
    type: str | None
    format: str | None
    default: Any
    required: bool

    def __post_init__(self):
        object.__setattr__(self, "value", _field_function(self))


def _field_function(field: CompiledField) -> Callable[[Any, Scope], Any]:
    """The field's `value(record, scope)`: produce, default, required check and type, as one
    closure (called once per field per record, so attribute lookups are taken out of it)."""
    produce, default, required, target, type_, fmt = (
        field.produce, field.default, field.required, field.target, field.type, field.format)
    convert = CONVERTERS[type_] if type_ else None

    def value(record: Any, scope: Scope) -> Any:
        value = produce(record, scope)
        if value is None or value is _MISSING or value == "" or value == []:
            if default is not None:
                value = default
            if value is None or value is _MISSING or value == "" or value == []:
                if required:
                    raise FieldError(target, "is required but missing or empty")
                return None
        if convert is None:
            return value
        try:
            if isinstance(value, list):
                return [convert(v, fmt) for v in value]
            return convert(value, fmt)
        except (ValueError, ArithmeticError) as exc:
            raise FieldError(target, f"{exc} (type {type_})") from None

    return value


@dataclass(frozen=True)
class CompiledMapping:
    records: Path | None
    fields: tuple[CompiledField, ...]
    filter: Expression | None = None
    passthrough: bool = False

    def __post_init__(self):
        object.__setattr__(self, "_functions", tuple((f.target, f.value) for f in self.fields))

    @property
    def targets(self) -> list[str]:
        return [f.target for f in self.fields]

    def records_of(self, document: Any) -> Iterator[tuple[Any, Any]]:
        """(record, parent) for each record a document holds: itself, or each element at
        `records`, with the element that holds it (what `$parent` reads)."""
        if self.records is None or (self.records.from_root and not self.records.steps):
            yield document, None
            return
        *leading, last = self.records.steps
        if leading:
            parents, _ = Path("", self.records.from_root, tuple(leading)).read_all(document, document)
        else:
            parents = [document]
        tail = Path("", False, (last,))
        for parent in parents:
            for found in tail.read_all(parent, document)[0]:
                if found is None:
                    continue
                for record in found if isinstance(found, list) and not tail.steps[0].indexes else [found]:
                    # HL7 v2 records keep their segment name ({"OBX": {...}}), so `OBX.5.1` reads the current one.
                    as_record = getattr(record, "as_record", None)
                    yield (record if as_record is None else as_record()), parent

    def keep(self, record: Any, scope: Scope) -> bool:
        """The filter's verdict on a record (kept when truthy); FieldError("filter") if it fails."""
        if self.filter is None:
            return True
        try:
            return bool(self.filter.evaluate(record, scope))
        except ExpressionError as exc:
            raise FieldError("filter", f"the filter expression failed: {exc.reason}") from None

    def apply(self, record: Any, scope: Scope) -> dict:
        """Map one record; raises FieldError naming the first field that fails."""
        out = {target: value(record, scope) for target, value in self._functions}
        return self._with_unmapped(record, out) if self.passthrough else out

    def apply_collecting(self, record: Any, scope: Scope) -> tuple[dict, list[FieldError]]:
        """Map one record, going on past failing fields; returns the output and every error."""
        out, errors = {}, []
        for f in self.fields:
            try:
                out[f.target] = f.value(record, scope)
            except FieldError as exc:
                out[f.target] = None
                errors.append(exc)
        return (self._with_unmapped(record, out) if self.passthrough else out), errors

    @staticmethod
    def _with_unmapped(record: Any, out: dict) -> dict:
        if isinstance(record, dict):
            for key, value in record.items():
                if key not in out:
                    out[key] = value
        return out


def compile_mapping(mapping: dict, lookups: dict | None = None) -> CompiledMapping:
    """Check and compile a mapping document; `lookups` are the tables `$lookup` reads."""
    if mapping in (None, {}):
        raise MappingError("fields", "the mapping has no fields")
    if not isinstance(mapping, dict):
        raise MappingError("mapping", "must be an object with 'fields'")
    if lookups is not None and (not isinstance(lookups, dict)
                                or not all(isinstance(t, dict) for t in lookups.values())):
        raise MappingError("lookups", "must be an object of tables, each an object of key: value")
    records = mapping.get("records")
    records_path = None if records in (None, "", "$") else parse_path(records, "records")
    if records_path is not None and records_path.from_parent:
        raise MappingError("records", "the records path cannot start at $parent")
    filter_ = None
    if mapping.get("filter") not in (None, ""):
        filter_ = _expression(mapping["filter"], "filter", lookups)
    fields = mapping.get("fields")
    if not isinstance(fields, list) or not fields:
        raise MappingError("fields", "must be a non-empty list")
    compiled, seen = [], set()
    for number, spec in enumerate(fields, start=1):
        compiled.append(_compile_field(spec, number, seen, lookups))
    return CompiledMapping(records_path, tuple(compiled), filter_, bool(mapping.get("passthrough")))


def _expression(text: Any, field: str, lookups: dict | None) -> Expression:
    try:
        return compile_expression(text, lookups)
    except ExpressionError as exc:
        raise MappingError(field, exc.reason) from None


def _compile_field(spec: Any, number: int, seen: set, lookups: dict | None) -> CompiledField:
    if not isinstance(spec, dict):
        raise MappingError(f"fields[{number - 1}]", "must be an object")
    target = spec.get("target")
    if not isinstance(target, str) or not target.strip():
        raise MappingError(f"fields[{number - 1}]", "needs a non-empty 'target'")
    if target in seen:
        raise MappingError(target, "target appears twice")
    seen.add(target)
    kinds = [k for k in ("source", "value", "expr") if k in spec]
    if len(kinds) != 1:
        raise MappingError(target, "needs exactly one of 'source', 'value' or 'expr'")
    kind = kinds[0]
    if kind == "source":
        produce = parse_path(spec["source"], target).reader()
    elif kind == "value":
        constant = spec["value"]
        produce = lambda record, scope: constant  # noqa: E731
    else:
        produce = _expression_producer(_expression(spec["expr"], target, lookups), target)
    type_ = spec.get("type")
    if type_ is not None and type_ not in TYPES:
        raise MappingError(target, f"unknown type {type_!r}; use one of {', '.join(TYPES)}")
    fmt = spec.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise MappingError(target, "'format' must be a string")
    return CompiledField(target, produce, type_, fmt, spec.get("default"), bool(spec.get("required")))


def _expression_producer(expression: Expression, target: str) -> Callable[[Any, Scope], Any]:
    def produce(record: Any, scope: Scope) -> Any:
        try:
            return expression.evaluate(record, scope)
        except ExpressionError as exc:
            raise FieldError(target, f"the expression failed: {exc.reason}") from None

    return produce
