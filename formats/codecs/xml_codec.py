"""XML codec: the root element (or each `record` element) is one record tree.

Tree shape (DESIGN §2), decided once for every payload:
- an element with only text is that text (`<sku>A1</sku>` -> "A1"; empty -> "");
- otherwise a dict: attributes as "@name", child elements by name, and the
  element's own non-blank text as "#text";
- an element repeated under one parent is a list, in document order; a single
  one is not (the mapping reads a single element like a list of one, so
  `line[*]` and `line[0]` work either way; prefer them for elements that may repeat);
- names are local names, or "prefix:name" for namespaces declared in the
  `namespaces` option ({prefix: uri}).

With `record` (an element name), every such element is a document, streamed with
iterparse and cleared as it goes so memory stays flat. The parser is hardened: a
payload with a DOCTYPE is refused (no entity is ever expanded, no DTD loaded, no
network), and huge_tree stays off.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from lxml import etree

from . import Codec, CodecError, register_codec
from .fields import field_paths
from .text import stream

PARSER_SETTINGS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


def hardened_parser() -> etree.XMLParser:
    """An lxml parser for untrusted XML (no entities, no DTD, no network)."""
    return etree.XMLParser(**PARSER_SETTINGS)


class _NameCache(dict):
    """A dict that fills itself: `cache[tag]` computes a missing name once (plain indexing
    is the fastest lookup Python has, which matters once per element)."""

    def __init__(self, compute: Callable[[Any], str | None]):
        super().__init__()
        self.compute = compute

    def __missing__(self, tag: Any) -> str | None:
        name = self[tag] = self.compute(tag)
        return name


class Names:
    """Clark names `{uri}local` to mapping names, and back, per the `namespaces` option.
    `element_names[tag]` is an element's mapping name (None for a tag that is not a name:
    an entity or a processing instruction); `attribute_names[key]` an attribute's, with "@"."""

    def __init__(self, namespaces: dict | None):
        namespaces = namespaces or {}
        if not isinstance(namespaces, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in namespaces.items()):
            raise CodecError("option 'namespaces' must map prefixes to namespace URIs")
        self.prefix_of = {uri: prefix for prefix, uri in namespaces.items()}
        self.uri_of = dict(namespaces)
        self._cache: dict[str, str] = {}
        self.element_names = _NameCache(lambda tag: self.name(tag) if isinstance(tag, str) else None)
        self.attribute_names = _NameCache(lambda key: "@" + self.name(key))

    def name(self, clark: str) -> str:
        hit = self._cache.get(clark)
        if hit is None:
            if clark.startswith("{"):
                uri, local = clark[1:].split("}", 1)
                prefix = self.prefix_of.get(uri)
                hit = f"{prefix}:{local}" if prefix else local
            else:
                hit = clark
            self._cache[clark] = hit
        return hit

    def clark(self, name: str, where: str) -> str:
        """A mapping name to an lxml tag, refusing what XML cannot name."""
        prefix, sep, local = name.rpartition(":")
        if sep:
            if prefix not in self.uri_of:
                raise CodecError(f"namespace prefix {prefix!r} is not declared in the 'namespaces' option", where)
            tag = f"{{{self.uri_of[prefix]}}}{local}"
        else:
            tag = name
        try:
            etree.QName(tag)
        except ValueError:
            raise CodecError(f"{name!r} is not a valid XML name", where) from None
        if not local or not (local[0].isalpha() or local[0] == "_"):
            raise CodecError(f"{name!r} is not a valid XML name", where)
        return tag


def element_tree(element: etree._Element, names: Names) -> Any:
    """One element as a record tree (see the module docstring). Called once per element of
    every record, so it does the least per child: children come in one C call
    (`element[:]`), names from caches keyed by lxml's tag, a leaf without attributes is its
    text without a recursive call, and text beside children is joined only when present."""
    attributes = element.items()
    children = element[:]
    if attributes:
        tree = {}
        attribute_names = names.attribute_names
        for key, value in attributes:
            tree[attribute_names[key]] = value
        if not children:
            text = element.text
            if text and not text.isspace():
                tree["#text"] = text
            return tree
    elif not children:
        return element.text or ""
    else:
        tree = {}
    element_names = names.element_names
    tails = None
    for child in children:
        key = element_names[child.tag]
        tail = child.tail
        if tail:
            if tails is None:
                tails = [tail]
            else:
                tails.append(tail)
        if key is None:  # an entity or a processing instruction kept by the parser
            continue
        value = element_tree(child, names) if len(child) or child.items() else (child.text or "")
        if key not in tree:
            tree[key] = value
        else:
            # An element's value is never a list, so a list here always means a repeat.
            held = tree[key]
            if held.__class__ is list:
                held.append(value)
            else:
                tree[key] = [held, value]
    # Text beside child elements is usually indentation; keep it only when it says something.
    text = element.text
    if tails is not None:
        text = ((text or "") + "".join(tails)).strip()
    elif text:
        text = text.strip()
    if text:
        tree["#text"] = text
    return tree


def syntax_error(exc: etree.XMLSyntaxError) -> CodecError:
    line, column = exc.position if exc.position else (exc.lineno or 0, 0)
    message = exc.msg.split(", line ")[0] if exc.msg else "malformed XML"
    return CodecError(f"malformed XML: {message}", f"line {line}, column {column}")


def refuse_doctype(element: etree._Element) -> None:
    doctype = element.getroottree().docinfo.doctype
    if doctype:
        raise CodecError(
            "XML with a DOCTYPE (DTD or entity declarations) is refused; entities are never expanded",
            f"line {element.sourceline or 1}",
        )


def read_elements(data, options: dict) -> Any:
    """Yield (element, names) for the root, or for each `record` element, checking `root`.
    An element is only valid until the next one is asked for (records are cleared)."""
    return read_documents(data, options, _element_and_names)


def _element_and_names(element: etree._Element, names: Names) -> tuple[etree._Element, Names]:
    return element, names


def read_documents(data, options: dict, build: Callable[[etree._Element, Names], Any]) -> Iterator[Any]:
    """Yield `build(element, names)` for the root, or for each `record` element, checking `root`.
    Nothing is read, and no error raised, before the first record is asked for."""
    return (_records if options.get("record") else _root)(data, options, build)


def _names(data, options: dict) -> Names:
    if isinstance(data, bytes) and not data.strip():
        raise CodecError("empty XML payload", "line 1, column 1")
    return Names(options.get("namespaces"))


def _root(data, options: dict, build) -> Iterator[Any]:
    names, root_name = _names(data, options), options.get("root")
    context = etree.iterparse(stream(data), events=("start", "end"), **PARSER_SETTINGS)
    depth = 0
    try:
        for event, element in context:
            if event == "start":
                if depth == 0:
                    _check_root(element, names, root_name)
                depth += 1
                continue
            depth -= 1
            if depth == 0:
                yield build(element, names)
    except etree.XMLSyntaxError as exc:
        raise syntax_error(exc) from None


def _inside_record(element: etree._Element, names: Names, record_name: str) -> bool:
    parent = element.getparent()
    while parent is not None:
        if names.name(parent.tag) == record_name:
            return True
        parent = parent.getparent()
    return False


def _check_root(root: etree._Element, names: Names, root_name: str | None) -> None:
    refuse_doctype(root)
    if root_name and names.name(root.tag) != root_name:
        raise CodecError(f"the root element is {names.name(root.tag)!r}, expected {root_name!r}", f"line {root.sourceline}")


def _records(data, options: dict, build) -> Iterator[Any]:
    """Each `record` element, streamed: lxml hands over only the end of record elements (a
    tag filter), and each record is cleared, with its earlier siblings, once built."""
    names, record_name, root_name = _names(data, options), options["record"], options.get("root")
    prefix, sep, local = record_name.rpartition(":")
    tag = f"{{{names.uri_of[prefix]}}}{local}" if sep and prefix in names.uri_of else f"{{*}}{local}"
    # With no namespace declared every element is named by its local name, so each element
    # the tag filter hands over is a record by name; otherwise `{*}row` may be `p:row`.
    check_name = bool(names.uri_of)
    context = etree.iterparse(stream(data), events=("end",), tag=tag, **PARSER_SETTINGS)
    checked = False
    # The last parent found to have no record among its ancestors: records are usually
    # siblings, so the walk up to the root is done once, not once per record.
    outer = None
    try:
        for _, element in context:
            if not checked:
                _check_root(element.getroottree().getroot(), names, root_name)
                checked = True
            if check_name and names.name(element.tag) != record_name:
                continue  # another namespace's element
            parent = element.getparent()
            if parent is not outer:
                if _inside_record(element, names, record_name):
                    continue  # a record inside a record: part of the outer one
                outer = parent
            yield build(element, names)
            element.clear(keep_tail=True)
            while parent is not None and element.getprevious() is not None:
                del parent[0]
        if not checked:  # no record at all: the document must still be sound
            root = context.root
            if root is not None:
                _check_root(root, names, root_name)
    except etree.XMLSyntaxError as exc:
        raise syntax_error(exc) from None


@register_codec
class XmlCodec(Codec):
    schema_language = "xsd"
    kind = "xml"
    label = "XML"
    content_type = "application/xml"
    options_schema = {
        "type": "object",
        "properties": {
            "namespaces": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "title": "Namespace prefixes used in paths ({prefix: uri})",
            },
            "root": {"type": "string", "title": "Root element (checked on read; written as the root)"},
            "record": {"type": "string", "title": "Element that is one record (each one a document)"},
        },
        "additionalProperties": True,
    }

    def single_document(self, options):
        return not options.get("record")

    def read(self, data, options):
        return read_documents(data, options, element_tree)

    def infer_fields(self, data: bytes, options: dict) -> list[str]:
        return field_paths(self.read(data, options))

    def write(self, records, fields, options, single):
        names = Names(options.get("namespaces"))
        nsmap = {prefix: uri for prefix, uri in names.uri_of.items()} or None
        record_name = options.get("record") or "record"
        records = list(records)
        if single and len(records) == 1:
            root = _build(None, options.get("root") or record_name, records[0], names, nsmap, "record 1")
        else:
            root = etree.Element(names.clark(options.get("root") or "records", "root"), nsmap=nsmap)
            for number, record in enumerate(records, start=1):
                _build(root, record_name, record, names, None, f"record {number}")
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _build(parent, name: str, value: Any, names: Names, nsmap, where: str):
    tag = names.clark(name, where)
    element = etree.Element(tag, nsmap=nsmap) if parent is None else etree.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, child in value.items():
            key = str(key)
            if key == "#text":
                element.text = _text(child, where)
            elif key.startswith("@"):
                element.set(names.clark(key[1:], where), _text(child, where))
            elif isinstance(child, list):
                for item in child:
                    _build(element, key, item, names, None, where)
            else:
                _build(element, key, child, names, None, where)
    elif isinstance(value, list):
        raise CodecError(f"element {name!r} holds a list of lists, which XML cannot express", where)
    else:
        element.text = _text(value, where)
    return element


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise CodecError("an attribute or text cannot hold a structure", where)
    if isinstance(value, Decimal):
        return str(value)
    text = str(value)
    try:
        # lxml refuses control characters XML 1.0 cannot carry; say so as a codec error.
        etree.Element("x").text = text
    except ValueError:
        raise CodecError("text holds characters XML 1.0 cannot carry (control characters)", where) from None
    return text
