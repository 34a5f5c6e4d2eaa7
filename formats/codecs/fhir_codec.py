"""FHIR codec: FHIR JSON or FHIR XML, read into the FHIR JSON tree; written as FHIR JSON.

A Bundle yields each entry's resource as a document; any other resource is one
document. FHIR XML is read into the same tree as FHIR JSON, so one mapping serves
both: `value` attributes become values (booleans, integers and decimals typed as in
JSON), elements that FHIR defines as repeating are lists even when there is one
(known from the fhir.resources models of the chosen version; an element the models
do not know is a list only when it repeats), `<resource><Patient>` wrappers become
the resource with its `resourceType`, extensions and ids on primitives go to
`_name`, and the narrative `div` stays XHTML text. XML is parsed with the
hardened parser of the XML codec (a DOCTYPE is refused).

A FHIR JSON Bundle is read entry by entry as it is parsed (ijson), as XML Bundles are.

Versions: "R5" validates with fhir.resources' top-level models (FHIR 5.0.0); "R4"
(the default) with fhir.resources.R4B (FHIR 4.3.0), the closest to R4 (4.0.1) that
fhir.resources >= 7 ships: the two differ little outside medication definitions.
Validation happens in `validate` only; reading does not require a valid resource.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache
from typing import Any

import ijson
import orjson
from lxml import etree
from pydantic import ValidationError

from . import Codec, CodecError, decode_text, register_codec
from .fields import field_paths
from .text import payload_bytes, stream
from .xml_codec import PARSER_SETTINGS, read_elements, refuse_doctype, syntax_error

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
VERSIONS = ("R4", "R5")
_ABC_TYPE = re.compile(r"abc\.(\w+)Type\b")


def _version(options: dict) -> str:
    version = options.get("version") or "R4"
    if version not in VERSIONS:
        raise CodecError(f"FHIR version {version!r} is not supported; use R4 or R5", "options.version")
    return version


def model_class(version: str, name: str):
    """The fhir.resources model for a resource or type name, or None."""
    if version == "R5":
        from fhir.resources import get_fhir_model_class
    else:
        from fhir.resources.R4B import get_fhir_model_class
    try:
        return get_fhir_model_class(name)
    except (ValueError, KeyError, AttributeError, ImportError):
        return None


@lru_cache(maxsize=4096)
def _element_info(version: str, owner: str, name: str) -> tuple[bool, str, str] | None:
    """(is_list, kind, type name) of element `name` of type `owner`; kind is resource, complex or a primitive."""
    cls = model_class(version, owner)
    if cls is None:
        return None
    for field_name, info in cls.model_fields.items():
        if (info.alias or field_name) == name:
            break
    else:
        return None
    text = repr(info.annotation)
    is_list = "List[" in text
    match = _ABC_TYPE.search(text)
    if match:
        type_name = match.group(1)
        if type_name == "Resource":
            return is_list, "resource", ""
        # Backbone elements are named after their owner (PatientContact); types stand alone (HumanName).
        return is_list, "complex", type_name
    if "Integer64" in text or "Xhtml" in text:
        return is_list, "string", ""
    if "bool" in text:
        return is_list, "boolean", ""
    if "Decimal" in text or "int" in text:
        return is_list, "number", ""
    return is_list, "string", ""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _primitive(text: str | None, kind: str) -> Any:
    if text is None:
        return None
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    if kind == "number":
        try:
            number = orjson.loads(text)  # exactly what FHIR JSON would have given
        except orjson.JSONDecodeError:
            return text
        return number if isinstance(number, (int, float)) and not isinstance(number, bool) else text
    return text


def xml_resource(element: etree._Element, version: str) -> dict:
    """A FHIR XML resource element as its FHIR JSON tree."""
    type_name = _local(element.tag)
    tree: dict[str, Any] = {"resourceType": type_name}
    _fill(tree, element, type_name, version)
    return tree


def _fill(tree: dict, element: etree._Element, owner: str, version: str) -> None:
    for key, value in element.attrib.items():
        if key != "value" and not key.startswith("{"):
            tree[key] = value
    values: dict[str, list] = {}
    extras: dict[str, list] = {}
    listed: dict[str, bool] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = _local(child.tag)
        if child.tag == f"{{{XHTML_NS}}}div":
            tree["div"] = etree.tostring(child, encoding="unicode", with_tail=False)
            continue
        info = _element_info(version, owner, name) if owner else None
        value, extra = _child_value(child, info, version)
        values.setdefault(name, []).append(value)
        extras.setdefault(name, []).append(extra)
        listed[name] = bool(info and info[0])
    for name, found in values.items():
        as_list = listed[name] or len(found) > 1
        if any(v is not None for v in found):
            tree[name] = found if as_list else found[0]
        if any(e is not None for e in extras[name]):
            tree["_" + name] = extras[name] if as_list else extras[name][0]


def _child_value(child: etree._Element, info: tuple | None, version: str) -> tuple[Any, dict | None]:
    """An element's value in the JSON tree and its `_name` extras (id, extensions of a primitive)."""
    elements = [c for c in child if isinstance(c.tag, str)]
    is_resource = (info and info[1] == "resource") or (
        info is None and "value" not in child.attrib and len(elements) == 1 and _local(elements[0].tag)[:1].isupper()
    )
    if is_resource and elements:
        return xml_resource(elements[0], version), None
    if "value" in child.attrib or (info and info[1] not in ("complex", "resource")):
        extra: dict = {}
        _fill(extra, child, "Element", version)
        return _primitive(child.get("value"), info[1] if info else "string"), extra or None
    value: dict = {}
    _fill(value, child, info[2] if info else "", version)
    return value, None


def read_document(data: bytes, options: dict) -> dict:
    """The whole resource (a Bundle stays a Bundle), from FHIR JSON or FHIR XML."""
    version = _version(options)
    if _is_xml(data.lstrip()[:4]) or _is_xml(data[:4]):
        return _read_xml(data, version)
    text = decode_text(data, "utf-8")
    if not text.strip():
        raise CodecError("empty FHIR payload", "line 1, column 1")
    try:
        tree = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"malformed FHIR JSON: {exc.msg}", f"line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(tree, dict) or not isinstance(tree.get("resourceType"), str):
        raise CodecError("not a FHIR resource: the JSON object has no resourceType", "$.resourceType")
    return tree


def _read_xml(data: bytes, version: str) -> dict:
    root = None
    for element, _ in read_elements(data, {}):  # the XML codec's hardened reading: a DOCTYPE is refused first
        root = element
    _check_fhir_root(root)
    return xml_resource(root, version)


def _check_fhir_root(root: etree._Element) -> None:
    if not root.tag.startswith(f"{{{FHIR_NS}}}"):
        raise CodecError(f"the root element {_local(root.tag)!r} is not in the FHIR namespace ({FHIR_NS})", f"line {root.sourceline}")


def _xml_resources(data, version: str) -> Iterator[dict]:
    """The resources of FHIR XML as they are parsed: a Bundle's entries one at a time, each
    cleared once read (memory stays flat), the same trees `xml_resource` gives; any other
    resource whole. Hardened as the XML codec reads (a DOCTYPE is refused)."""
    context = etree.iterparse(stream(data), events=("start", "end"), **PARSER_SETTINGS)
    depth, root, bundle, number = 0, None, False, 0
    entry = f"{{{FHIR_NS}}}entry"
    try:
        for event, element in context:
            if event == "start":
                if depth == 0:
                    refuse_doctype(element)
                    _check_fhir_root(element)
                    root, bundle = element, element.tag == f"{{{FHIR_NS}}}Bundle"
                depth += 1
                continue
            depth -= 1
            if depth == 0 and not bundle:
                yield xml_resource(element, version)
            elif depth == 1 and bundle and element.tag == entry:
                value, _ = _child_value(element, _element_info(version, "Bundle", "entry"), version)
                if not isinstance(value, dict):
                    raise CodecError("a Bundle entry must be an object", f"Bundle.entry[{number}]")
                number += 1
                if isinstance(value.get("resource"), dict):
                    yield value["resource"]
                element.clear(keep_tail=True)
                while element.getprevious() is not None:
                    del root[0]
    except etree.XMLSyntaxError as exc:
        raise syntax_error(exc) from None


def _json_resources(source, start: int, options: dict) -> Iterator[dict]:
    """The resources of FHIR JSON: a Bundle whose first member is `"resourceType": "Bundle"`
    (as FHIR writes it) entry by entry as it is parsed (ijson, C backend), each entry built
    alone, so memory stays flat; anything else is read whole by `read_document`. The same
    resources and errors as the whole read: a payload ijson refuses is read again whole, for
    orjson's exact reason and place, or, when orjson reads it (an integer past 64 bits), for
    the entries not yielded yet (only such payloads are held whole)."""
    events = ijson.basic_parse(source, use_float=True)
    number = 0
    try:
        head = [next(events, (None, None)) for _ in range(3)]
        if head != [("start_map", None), ("map_key", "resourceType"), ("string", "Bundle")]:
            source.seek(start)
            yield from _resources(read_document(payload_bytes(source), options))
            return
        number = 0
        for event, value in events:
            if event == "end_map":  # the Bundle's own end: the members are all read
                break
            member = value  # a map_key of the Bundle
            event, value = next(events)
            if member != "entry":
                _skip(event, events)
                continue
            if event != "start_array":
                if _build(event, value, events):  # `entry` null, false, {} or "" is read as no entries
                    raise CodecError("Bundle.entry must be a list", "Bundle.entry")
                continue
            for event, value in events:
                if event == "end_array":
                    break
                entry = _build(event, value, events)
                if not isinstance(entry, dict):
                    raise CodecError("a Bundle entry must be an object", f"Bundle.entry[{number}]")
                number += 1
                if isinstance(entry.get("resource"), dict):
                    yield entry["resource"]
        for _ in events:  # the rest: only whitespace may follow (ijson checks)
            pass
    except ijson.JSONError:
        source.seek(start)
        yield from _resources(read_document(payload_bytes(source), options), skip=number)


def _build(event: str, value, events) -> Any:
    """The JSON value starting with (`event`, `value`), taking the rest of its events."""
    if event not in ("start_map", "start_array"):
        return _number(value) if event == "number" else value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for event, value in events:
        builder.event(event, _number(value) if event == "number" else value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if not depth:
                break
    return builder.value


def _number(value: int | float) -> int | float:
    """A number as orjson reads it: an integer past 64 bits is a float, an infinite one an error."""
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 64) else float(value)
    if not math.isfinite(value):
        raise ijson.JSONError("number is infinity")
    return value


def _skip(event: str, events) -> None:
    """Pass over the rest of the value that starts with `event`."""
    depth = event in ("start_map", "start_array")
    while depth:
        event, _ = next(events)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1


def _is_xml(head: bytes) -> bool:
    """Whether a payload starting with `head` (its first bytes) is FHIR XML rather than JSON."""
    return head[:1] == b"<" or head.startswith(b"\xef\xbb\xbf<") or head[:2] in (b"\xff\xfe", b"\xfe\xff")


def _resources(document: dict, skip: int = 0):
    """The resources of a whole document: a Bundle's entries (from entry `skip` on), or itself."""
    if document.get("resourceType") != "Bundle":
        yield document
        return
    entries = document.get("entry") or []
    if not isinstance(entries, list):
        raise CodecError("Bundle.entry must be a list", "Bundle.entry")
    for number, entry in enumerate(entries):
        if number < skip:
            continue
        if not isinstance(entry, dict):
            raise CodecError("a Bundle entry must be an object", f"Bundle.entry[{number}]")
        if isinstance(entry.get("resource"), dict):
            yield entry["resource"]


def _error_path(resource_type: str, loc: tuple) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _fragment(value):
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CodecError(f"{value} is not a FHIR decimal")
        return orjson.Fragment(str(value))
    raise TypeError


@register_codec
class FhirCodec(Codec):
    kind = "fhir"
    label = "FHIR"
    content_type = "application/fhir+json"
    options_schema = {
        "type": "object",
        "properties": {
            "version": {"enum": list(VERSIONS), "default": "R4", "title": "FHIR version (R4 validates with R4B models)"},
        },
        "additionalProperties": True,
    }

    def read(self, data, options):
        version = _version(options)
        source = stream(data)
        start = source.tell()
        head = source.read(1 << 16)  # enough to see past leading whitespace; read_document decides otherwise
        source.seek(start)
        if _is_xml(head.lstrip()[:4]) or _is_xml(head[:4]):
            yield from _xml_resources(source, version)
            return
        if head.lstrip()[:1] == b"{":  # UTF-8 JSON (no byte-order mark): a Bundle streams
            yield from _json_resources(source, start, options)
            return
        yield from _resources(read_document(payload_bytes(source), options))

    def infer_fields(self, data: bytes, options: dict) -> list[str]:
        return field_paths(self.read(data, options))

    def validate(self, data, options):
        document = read_document(data, options)
        version = _version(options)
        resource_type = document["resourceType"]
        cls = model_class(version, resource_type)
        if cls is None:
            raise CodecError(f"resourceType: {resource_type!r} is not a FHIR {version} resource type", "resourceType")
        try:
            cls.model_validate(document)
        except ValidationError as exc:
            errors = exc.errors()
            first = errors[0]
            path = _error_path(resource_type, first["loc"])
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise CodecError(f"{path}: {first['msg']}{more}", path) from None
        except (ValueError, TypeError, KeyError) as exc:
            raise CodecError(f"not a valid FHIR {version} {resource_type}: {exc}", resource_type) from None

    def write(self, records, fields, options, single):
        records = list(records)
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise CodecError("a FHIR record must be an object (a resource)", f"record {number}")
        if single and len(records) == 1:
            body = records[0]
        else:
            body = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in records]}
        try:
            return orjson.dumps(body, default=_fragment)
        except TypeError as exc:
            raise CodecError(f"a value cannot be written as JSON: {exc}") from None
