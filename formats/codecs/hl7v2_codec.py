"""HL7 v2 codec (ER7, the pipe-and-hat encoding): one record tree per message.

Tree per message: `{"MSH": {...}, "PID": {...}, "OBX": [{...}, ...]}` keyed by
segment name in order of first appearance; a segment that appears more than once
is a list. A segment is a dict keyed by HL7's own field numbers as strings ("1",
"2", ...; in MSH "1" is the field separator, "2" the encoding characters, "10" the
control id); empty fields are left out. A field with components is a dict keyed
"1", "2", ... (sub-components nest the same way); repetitions of a field are a
list. Escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\) are decoded.

Two HL7 conventions make DESIGN's paths work whatever the message holds:
- a value without components is a `Text` (a str) that answers `.1` with itself,
  so `PID.5.1` reads a one-component PID-5 and `OBX.5.1` a plain OBX-5;
- a repeating field or segment is a `Repeats` list whose unindexed step reads the
  first repetition (`PID.3.1` is `PID.3[0].1`, as HL7 tools read it).
With `records: "OBX[*]"` each record is `{"OBX": <segment>}` (records keep the
segment name): a segment is a `Segment` that the mapping wraps via `as_record`.

The separators are read from each MSH (and FHS/BHS). A batch (FHS/BHS ... BTS/FTS,
or several MSH) yields one document per message; MLLP framing bytes are dropped;
segments end at \\r, \\n or \\r\\n. Written as a small parser rather than with an
HL7 library: python-hl7 splits segments on \\r only and leaves escapes to the
caller, hl7apy is version- and structure-driven and re-escapes values; neither
gives this tree, and both would need the same walking code around them.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from . import Codec, CodecError, decode_text, register_codec
from .fields import field_paths
from .text import payload_bytes

DEFAULT_ENCODING_CHARACTERS = "^~\\&"
BATCH_SEGMENTS = {"FHS", "BHS", "BTS", "FTS"}
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_MLLP = str.maketrans("", "", "\x0b\x1c")


class Text(str):
    """A value without components: as component (or sub-component) 1 it answers itself."""

    __slots__ = ()

    def path_child(self, name: str) -> Any:
        if name == "1":
            return self
        raise KeyError(name)


class Repeats(list):
    """Repetitions of a field or a segment: an unindexed step reads the first one."""

    def path_child(self, name: str) -> Any:
        if not self:
            raise KeyError(name)
        first = self[0]
        if isinstance(first, dict):
            return first[name]
        child = getattr(first, "path_child", None)
        if child is None:
            raise KeyError(name)
        return child(name)


class Segment(dict):
    """One segment's fields; as a record it keeps its name (`{"OBX": {...}}`)."""

    __slots__ = ("name",)

    def __init__(self, name: str, fields: dict):
        super().__init__(fields)
        self.name = name

    def as_record(self) -> dict:
        return {self.name: self}


class Separators:
    def __init__(self, field: str, encoding: str):
        chars = (encoding + DEFAULT_ENCODING_CHARACTERS[len(encoding):])[:4]
        self.field = field
        self.component, self.repetition, self.escape, self.subcomponent = chars
        if len({field, *chars}) != 5 or any(c.isalnum() or c in "\r\n " for c in (field, *chars)):
            raise ValueError(f"separators {field + encoding!r} must be five different punctuation characters")
        self._escapes = {
            "F": field, "S": self.component, "T": self.subcomponent, "R": self.repetition, "E": self.escape,
            ".br": "\n",
        }

    @classmethod
    def from_header(cls, line: str) -> Separators:
        """The separators an MSH/FHS/BHS segment declares (`MSH|^~\\&|...`)."""
        if len(line) < 5:
            raise ValueError("the header segment is too short to declare its separators")
        field = line[3]
        encoding = line[4:].split(field, 1)[0]
        if not 2 <= len(encoding) <= 5:
            raise ValueError(f"encoding characters {encoding!r} should be 4 (component, repetition, escape, sub-component)")
        return cls(field, encoding[:4])

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    def unescape(self, text: str) -> str:
        esc = self.escape
        if esc not in text:
            return text
        out, i = [], 0
        while i < len(text):
            ch = text[i]
            end = text.find(esc, i + 1) if ch == esc else -1
            if end == -1:
                out.append(text[i:] if ch == esc else ch)
                i = len(text) if ch == esc else i + 1
                continue
            code = text[i + 1:end]
            if code in self._escapes:
                out.append(self._escapes[code])
            elif code[:1] == "X" and len(code) > 1 and len(code) % 2 == 1 and all(c in "0123456789abcdefABCDEF" for c in code[1:]):
                raw = bytes.fromhex(code[1:])
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append(raw.decode("latin-1"))
            elif code in ("H", "N"):
                pass  # highlighting on/off: formatting only
            else:
                out.append(text[i:end + 1])  # an escape we do not interpret stays as sent
            i = end + 1
        return "".join(out)

    def escape_text(self, text: str) -> str:
        esc = self.escape
        text = text.replace(esc, f"{esc}E{esc}")
        for char, code in ((self.field, "F"), (self.component, "S"), (self.subcomponent, "T"), (self.repetition, "R")):
            text = text.replace(char, f"{esc}{code}{esc}")
        return text.replace("\r", f"{esc}X0D{esc}").replace("\n", f"{esc}.br{esc}")


# --- reading ---


def _numbered(parts: list, start: int = 1) -> dict:
    return {str(number): part for number, part in enumerate(parts, start=start) if part != ""}


def _value(text: str, seps: Separators) -> Any:
    """One repetition: Text, or a dict of components (each Text or a dict of sub-components)."""
    if seps.component not in text and seps.subcomponent not in text:
        return Text(seps.unescape(text))
    components = []
    for component in text.split(seps.component):
        if seps.subcomponent in component:
            subs = _numbered([Text(seps.unescape(s)) for s in component.split(seps.subcomponent)])
            components.append(subs or "")
        else:
            components.append(Text(seps.unescape(component)))
    numbered = _numbered(components)
    return numbered or Text("")


def _field(text: str, seps: Separators) -> Any:
    if seps.repetition in text:
        return Repeats(_value(rep, seps) for rep in text.split(seps.repetition))
    return _value(text, seps)


def _segment(line: str, seps: Separators) -> tuple[str, Segment]:
    name = line[:3]
    parts = line.split(seps.field)
    if name == "MSH":
        fields = {"1": Text(seps.field), "2": Text(parts[1] if len(parts) > 1 else "")}
        fields.update(_numbered([_field(p, seps) for p in parts[2:]], start=3))
    else:
        fields = _numbered([_field(p, seps) for p in parts[1:]])
    return name, Segment(name, fields)


def _add(message: dict, name: str, segment: Segment) -> None:
    if name not in message:
        message[name] = segment
    elif isinstance(message[name], Repeats):
        message[name].append(segment)
    else:
        message[name] = Repeats([message[name], segment])


def split_segments(data: bytes, options: dict) -> list[tuple[int, str]]:
    text = decode_text(data, options.get("encoding") or "utf-8").translate(_MLLP)
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]


def read_messages(data: bytes, options: dict):
    segments = split_segments(data, options)
    if not segments:
        raise CodecError("empty HL7 v2 payload", "line 1")
    message: dict | None = None
    seps: Separators | None = None
    for number, line in segments:
        where = f"line {number}"
        name = line[:3]
        header = name in ("MSH", "FHS", "BHS")
        if not _SEGMENT_NAME.match(name) or (len(line) > 3 and not header and seps and line[3] != seps.field):
            raise CodecError(f"{line[:12]!r} does not start with a segment name and a field separator", where)
        if header:
            try:
                seps = Separators.from_header(line)
            except ValueError as exc:
                raise CodecError(f"{name}: {exc}", where) from None
        if name in BATCH_SEGMENTS:
            if message is not None:
                yield message
            message = None
            continue
        if name == "MSH":
            if message is not None:
                yield message
            message = {}
        elif message is None:
            raise CodecError(f"segment {name} before any MSH: a message starts with MSH", where)
        try:
            _add(message, *_segment(line, seps))
        except ValueError as exc:  # pragma: no cover - the parts above are plain text
            raise CodecError(str(exc), where) from None
    if message is not None:
        yield message


# --- writing ---


def _write_value(value: Any, seps: Separators, where: str, level: int = 0) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        if level >= 2:
            raise CodecError("a sub-component cannot hold further parts", where)
        joiner = seps.component if level == 0 else seps.subcomponent
        return joiner.join(_write_value(v, seps, where, level + 1) for v in _by_number(value, where))
    if isinstance(value, list):
        raise CodecError("only a whole field can repeat", where)
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, Decimal):
        return seps.escape_text(format(value, "f"))
    return seps.escape_text(str(value))


def _by_number(parts: dict, where: str) -> list:
    numbered = {}
    for key, value in parts.items():
        if not str(key).isdigit() or int(key) < 1:
            raise CodecError(f"{key!r} is not an HL7 position (1, 2, ...)", where)
        numbered[int(key)] = value
    if not numbered:
        return []
    return [numbered.get(n) for n in range(1, max(numbered) + 1)]


def _write_segment(name: str, fields: Any, seps: Separators, where: str) -> str:
    if not isinstance(name, str) or not _SEGMENT_NAME.match(name):
        raise CodecError(f"{name!r} is not a segment name (three letters or digits)", where)
    if not isinstance(fields, dict):
        raise CodecError(f"segment {name} must be a dict of fields", where)
    values = _by_number(fields, f"{where}, {name}")
    out = []
    for number, value in enumerate(values, start=1):
        if name in ("MSH", "FHS", "BHS") and number <= 2:
            continue  # the separators themselves, written from `seps`
        at = f"{where}, {name}-{number}"
        if isinstance(value, list):
            out.append(seps.repetition.join(_write_value(v, seps, at) for v in value))
        else:
            out.append(_write_value(value, seps, at))
    if name in ("MSH", "FHS", "BHS"):
        return seps.field.join([name, seps.encoding_characters, *out[0:]])
    return seps.field.join([name, *out])


def _record_separators(record: dict, where: str) -> Separators:
    msh = record.get("MSH")
    if isinstance(msh, list):
        msh = msh[0] if msh else None
    if isinstance(msh, dict) and msh.get("1") and msh.get("2"):
        try:
            return Separators(str(msh["1"]), str(msh["2"])[:4])
        except ValueError as exc:
            raise CodecError(f"MSH: {exc}", where) from None
    return Separators("|", DEFAULT_ENCODING_CHARACTERS)


def write_message(record: dict, where: str = "record 1") -> str:
    if not isinstance(record, dict):
        raise CodecError("an HL7 v2 record must be a dict of segments", where)
    seps = _record_separators(record, where)
    lines = []
    order = (["MSH"] if "MSH" in record else []) + [name for name in record if name != "MSH"]
    for name in order:
        segments = record[name]
        for segment in segments if isinstance(segments, list) else [segments]:
            lines.append(_write_segment(name, segment, seps, where))
    return "\r".join(lines) + "\r"


def plain(value: Any) -> Any:
    """HL7 values as plain JSON for expressions: a single repetition is the value itself."""
    if isinstance(value, Repeats):
        return plain(value[0]) if len(value) == 1 else [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@register_codec
class Hl7v2Codec(Codec):
    kind = "hl7v2"
    label = "HL7 v2"
    content_type = "x-application/hl7-v2+er7"
    options_schema = {
        "type": "object",
        "properties": {
            "encoding": {"type": "string", "default": "utf-8", "title": "Character set (MSH-18 is not read)"},
        },
        "additionalProperties": True,
    }

    def expression_view(self, value):
        return plain(value)

    def single_document(self, options):
        return True

    def read(self, data, options):
        return read_messages(payload_bytes(data), options)

    def infer_fields(self, data: bytes, options: dict) -> list[str]:
        return field_paths(self.read(data, options))

    def write(self, records, fields, options, single):
        text = "".join(write_message(record, f"record {n}") for n, record in enumerate(records, start=1))
        encoding = options.get("encoding") or "utf-8"
        try:
            return text.encode(encoding)
        except LookupError:
            raise CodecError(f"unknown encoding {encoding!r}") from None
        except UnicodeEncodeError as exc:
            raise CodecError(f"a value cannot be written in {encoding}: {exc.reason}") from None


# --- acknowledgements ---


def build_ack(original: bytes | dict, code: str = "AA", text: str = "", control_id: str | None = None) -> bytes:
    """An ACK for a received message: MSA `code` (AA accept, AE error, AR reject) with its control id.

    `original` is the message as received (bytes) or its tree; a payload that cannot
    be read still gets an answer (an AR with no control id), so a sender never waits.
    """
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise ValueError(f"unknown acknowledgement code {code!r}")
    message: dict = {}
    if isinstance(original, dict):
        message = original
    else:
        try:
            message = next(read_messages(original, {}), {})
        except CodecError as exc:
            code, text = "AR", text or f"{exc}"
    msh = message.get("MSH") or {}
    if isinstance(msh, list):
        msh = msh[0]
    seps = _record_separators(message, "ack") if msh else Separators("|", DEFAULT_ENCODING_CHARACTERS)
    now = datetime.now(UTC)
    trigger = msh.get("9", {}).get("2", "") if isinstance(msh.get("9"), dict) else ""
    ack = {
        "MSH": {
            "1": seps.field, "2": seps.encoding_characters,
            "3": msh.get("5", ""), "4": msh.get("6", ""), "5": msh.get("3", ""), "6": msh.get("4", ""),
            "7": now.strftime("%Y%m%d%H%M%S"),
            "9": {"1": "ACK", "2": trigger, "3": "ACK"} if trigger else "ACK",
            "10": control_id or f"ACK{now.strftime('%Y%m%d%H%M%S%f')}",
            "11": msh.get("11", "P"),
            "12": msh.get("12", "2.5"),
        },
        "MSA": {"1": code, "2": msh.get("10", ""), **({"3": text[:80]} if text else {})},
    }
    return write_message(ack, "ack").encode("utf-8")


def mllp_frame(message: bytes) -> bytes:
    """Wrap a message in MLLP framing (start block 0x0b, end block 0x1c 0x0d)."""
    return b"\x0b" + message + b"\x1c\r"
