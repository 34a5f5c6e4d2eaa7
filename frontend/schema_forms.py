"""Forms drawn from a JSON Schema: the options of a format, connection or destination (and the
pages' own fields) become inputs, the posted form becomes the JSON the serializers check, and
their error messages go back beside the field they name.

Handles objects whose properties are string, integer, number, boolean, enum, arrays of
strings and arrays of choices (`"x-widget": "checkboxes"`, e.g. teams); anything else
(nested objects, arrays of objects) is edited as JSON text. Secret fields are password
inputs that are never filled in: blank keeps what is stored.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# What a message about the whole object says about one property ("'url' is a required property").
_NAMED = re.compile(r"^'([^']+)' is a required property$")


@dataclass
class Field:
    """One input of a schema-driven form, ready for partials/schema_fields.html."""

    name: str
    input_name: str
    label: str
    widget: str  # text, textarea, number, checkbox, checkboxes, select, lines, json, password, password_lines
    value: str = ""
    checked: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    required: bool = False
    help: str = ""
    step: str = "1"
    errors: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)  # checkboxes: the values ticked


def _widget(prop: dict, secret: bool) -> str:
    kind = prop.get("type")
    items = prop.get("items") or {}
    if secret:
        return "password_lines" if kind == "array" else "password"
    if prop.get("x-widget") == "checkboxes":
        return "checkboxes"
    if "enum" in prop:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return "number"
    if kind == "array" and (items.get("type") == "string" or "enum" in items):
        return "lines"
    if kind == "string":
        return "textarea" if prop.get("x-widget") == "textarea" else "text"
    return "json"


def _shown(widget: str, value: Any) -> str:
    if value is None or widget.startswith("password"):
        return ""
    if widget == "lines":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if widget == "json":
        return value if isinstance(value, str) else json.dumps(value, indent=2)
    return str(value)


def schema_fields(schema: dict, values: dict | None, errors: dict | None = None, prefix: str = "",
                  secrets: tuple[str, ...] | list[str] = ()) -> list[Field]:
    """The inputs for `schema`'s properties, showing `values` and the `errors` by property name."""
    values, errors = values or {}, errors or {}
    required = set(schema.get("required", []))
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        widget = _widget(prop, name in secrets)
        value = values.get(name, prop.get("default"))
        enum = prop.get("enum", (prop.get("items") or {}).get("enum", []))
        choices = [(str(v), str(label)) for v, label in prop.get("x-choices", [(v, v) for v in enum])]
        help_text = prop.get("description", "")
        if widget.startswith("password"):
            help_text = help_text or "Write-only: leave blank to keep the stored value."
        fields.append(Field(
            name=name, input_name=f"{prefix}{name}", label=prop.get("title") or name.replace("_", " ").capitalize(),
            widget=widget, value=_shown(widget, value), checked=bool(value) if widget == "checkbox" else False,
            choices=choices, required=name in required, help=help_text, step="1" if prop.get("type") == "integer" else "any",
            errors=list(errors.get(name, [])),
            selected=[str(v) for v in value] if widget == "checkboxes" and isinstance(value, list) else [],
        ))
    return fields


def _number(text: str, kind: str):
    try:
        return int(text) if kind == "integer" else float(text)
    except ValueError:
        return text  # left as text: the schema check names it ("... is not of type 'integer'")


def read_form(schema: dict, post, prefix: str = "", secrets: tuple[str, ...] | list[str] = ()) -> tuple[dict, dict]:
    """(values, errors) from a posted form. Blank inputs are left out (the schema's defaults
    apply, a stored secret is kept); only JSON that cannot be parsed is an error here, the
    rest is for the schema and the serializers to judge."""
    values, errors = {}, {}
    for name, prop in (schema.get("properties") or {}).items():
        widget = _widget(prop, name in secrets)
        key = f"{prefix}{name}"
        if widget == "checkbox":
            values[name] = key in post
            continue
        if widget == "checkboxes":
            by_text = {str(v): v for v in (prop.get("items") or {}).get("enum", [])}
            values[name] = [by_text.get(text, text) for text in post.getlist(key)]
            continue
        text = post.get(key, "")
        if widget in ("lines", "password_lines"):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines or widget == "lines":
                values[name] = lines
            continue
        if widget == "textarea":
            values[name] = text  # a cleared sample or schema is cleared
            continue
        if widget == "select" and prop.get("x-nullable") and not text:
            values[name] = None
            continue
        if text == "" or (widget != "text" and not text.strip()):
            continue
        if widget == "number":
            values[name] = _number(text.strip(), prop.get("type"))
        elif widget == "select":
            by_text = {str(v): v for v in prop.get("enum", [])}
            values[name] = by_text.get(text, text)
        elif widget == "json":
            try:
                values[name] = json.loads(text)
            except ValueError as exc:
                errors[name] = [f"not valid JSON: {exc}"]
        else:
            values[name] = text
    return values, errors


def errors_by_field(messages) -> dict[str, list[str]]:
    """Error messages keyed by the property they name: "delimiter: too long" goes to
    `delimiter`, "'url' is a required property" to `url`, the rest to "" (the whole form)."""
    found: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for name, inner in messages.items():
            for text in messages_of(inner):
                found.setdefault(str(name), []).append(text)
        return found
    for text in messages_of(messages):
        named = _NAMED.match(text)
        head, sep, rest = text.partition(": ")
        if named:
            found.setdefault(named.group(1), []).append("required")
        elif sep and " " not in head and head:
            found.setdefault(head.split(".")[0], []).append(f"{head}: {rest}" if "." in head else rest)
        else:
            found.setdefault("", []).append(text)
    return found


def messages_of(value) -> list[str]:
    """Every message in a serializer's (possibly nested) errors, as plain text."""
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in messages_of(v)]
    if isinstance(value, dict):
        return [f"{k}: {t}" for k, v in value.items() for t in messages_of(v)]
    return [str(value)]
