"""A format's `schema`: JSON Schema or XSD text, compiled once and checked at the door.

JSON Schema (jsonschema, the draft the schema names, 2020-12 by default):
- no `$ref` is ever fetched: the validator gets an empty `referencing` registry, so a
  remote or unknown reference is an error of the schema, not a network call;
- `pattern` and `patternProperties` run on the `regex` module with a time limit, so a
  catastrophic pattern in a user's schema cannot hang a web process;
- an error names the JSON path of the value at fault (`$.items[2].qty`).

XSD (lxml): read with the hardened parser; `xs:import`, `xs:include` and
`xs:redefine` are refused (they would load other files or URLs); an error names the
line of the payload.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import regex
from jsonschema import validators
from jsonschema.exceptions import SchemaError as JsonSchemaError
from jsonschema.exceptions import ValidationError
from lxml import etree
from referencing import Registry
from referencing.exceptions import Unresolvable

from .codecs import CodecError
from .codecs.xml_codec import hardened_parser, syntax_error

PATTERN_SECONDS = 0.1
MAX_ERRORS = 5
XSD_NS = "http://www.w3.org/2001/XMLSchema"


class SchemaError(Exception):
    """A schema text that cannot be used; `reason` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _search(pattern: str, text: str) -> bool | None:
    """Whether `pattern` matches; None when it ran out of time."""
    try:
        return regex.search(pattern, text, timeout=PATTERN_SECONDS) is not None
    except TimeoutError:
        return None


def _too_slow(pattern: str) -> ValidationError:
    return ValidationError(f"the pattern {pattern!r} took too long to check against this value")


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string"):
        found = _search(pattern, instance)
        if found is None:
            yield _too_slow(pattern)
        elif not found:
            yield ValidationError(f"{instance[:80]!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield _too_slow(pattern)
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


@dataclass
class JsonSchemaChecker:
    validator: Any

    def check(self, document: Any) -> None:
        try:
            errors = sorted(self.validator.iter_errors(document), key=lambda e: list(e.absolute_path))[:MAX_ERRORS]
        except Unresolvable as exc:
            raise CodecError(f"the schema refers to {exc.ref!r}, which is not in it (references are never fetched)") from None
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise CodecError(f"does not match the schema: {first.message}{more}", _json_path(first))


@dataclass
class XsdChecker:
    schema: etree.XMLSchema

    def check_bytes(self, data: bytes) -> None:
        try:
            document = etree.fromstring(data, hardened_parser())
        except etree.XMLSyntaxError as exc:
            raise syntax_error(exc) from None
        if not self.schema.validate(document):
            error = self.schema.error_log.last_error
            raise CodecError(f"does not match the XSD: {error.message}", f"line {error.line}")


def compile_json_schema(text: str) -> JsonSchemaChecker:
    try:
        schema = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"the schema is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("a JSON Schema is an object (or true/false)")
    base = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        base.check_schema(schema)
    except JsonSchemaError as exc:
        raise SchemaError(f"not a valid JSON Schema: {exc.message}") from None
    guarded = validators.extend(base, {"pattern": _pattern, "patternProperties": _pattern_properties})
    return JsonSchemaChecker(guarded(schema, registry=Registry()))


def compile_xsd(text: str) -> XsdChecker:
    try:
        root = etree.fromstring(text.encode("utf-8"), hardened_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SchemaError(f"the XSD is not well-formed XML: {exc}") from None
    for tag in ("import", "include", "redefine", "override"):
        if root.find(f".//{{{XSD_NS}}}{tag}") is not None:
            raise SchemaError(f"xs:{tag} is not allowed: the XSD must hold everything it uses")
    try:
        return XsdChecker(etree.XMLSchema(root))
    except etree.XMLSchemaParseError as exc:
        raise SchemaError(f"not a valid XSD: {exc}") from None


COMPILERS = {"json-schema": compile_json_schema, "xsd": compile_xsd}


def compile_schema(language: str, text: str) -> JsonSchemaChecker | XsdChecker | None:
    """The checker for a schema text in `language` (a codec's `schema_language`)."""
    if not text or not text.strip():
        return None
    return COMPILERS[language](text)
