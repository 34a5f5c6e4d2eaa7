"""Payloads made readable for the message page: JSON indented, XML indented (read with the
hardened parser), HL7 v2 one segment per line. Anything else is shown as text, unchanged."""
from __future__ import annotations

import orjson
from lxml import etree

from formats.codecs.xml_codec import hardened_parser

MAX_SHOWN = 512 * 1024


def pretty(data: bytes, content_type: str) -> tuple[str, str]:
    """(text to show, what it was read as)."""
    head = data.lstrip()[:5]
    if len(data) > MAX_SHOWN:
        return data[:MAX_SHOWN].decode("utf-8", "replace") + "\n… (cut; download the whole payload)", "text"
    if head.startswith((b"{", b"[")) or "json" in content_type:
        try:
            return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode(), "json"
        except orjson.JSONDecodeError:
            pass
    if head.startswith(b"<"):
        try:
            root = etree.fromstring(data, hardened_parser())
            if root.getroottree().docinfo.doctype:
                raise ValueError("a DOCTYPE is never parsed for display")
            etree.indent(root)
            return etree.tostring(root, encoding="unicode"), "xml"
        except (etree.XMLSyntaxError, ValueError):
            pass
    text = data.decode("utf-8", "replace")
    if text.lstrip("\x0b").startswith(("MSH|", "FHS|", "BHS|")):
        return "\n".join(s for s in text.strip("\x0b\x1c\r\n").replace("\r\n", "\r").replace("\n", "\r").split("\r") if s), "hl7v2"
    return text, "text"
