"""FHIR JSON Bundles are read entry by entry as they are parsed (ijson), giving the resources
(and the errors) that reading the whole Bundle gives."""
import io
import json
from pathlib import Path

import pytest

from formats.codecs import CodecError, codecs
from formats.codecs.fhir_codec import _resources, read_document

fhir = codecs.get("fhir")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir"


def patient(n: int) -> dict:
    return {"resourceType": "Patient", "id": f"p{n}", "active": True, "name": [{"family": f"F{n}", "given": ["A"]}],
            "extension": [{"url": "x", "valueDecimal": 1.10, "valueInteger": n}]}


def bundle(*members: str) -> bytes:
    return ('{"resourceType": "Bundle", ' + ", ".join(members) + "}").encode()


def entries(*items) -> str:
    return '"entry": ' + json.dumps(list(items))


def whole(data: bytes, options: dict):
    """The resources as reading the whole Bundle first gives them (or the error it raises)."""
    try:
        return list(_resources(read_document(data, options)))
    except CodecError as exc:
        return ("error", exc.reason, exc.location)


def streamed(data, options: dict):
    try:
        return list(fhir.read(data, options))
    except CodecError as exc:
        return ("error", exc.reason, exc.location)


BODIES = [
    *(path.read_bytes() for path in sorted(FIXTURES.glob("*.input.json"))),
    bundle('"id": "b"', entries({"resource": patient(1)}, {"fullUrl": "x"}, {"resource": None}, {"resource": "odd"},
                                {"resource": {"resourceType": "Bundle", "entry": [{"resource": patient(2)}]}}),
           '"meta": {"tag": [{"code": "t"}]}', '"total": 5'),
    bundle('"type": "collection"'),  # no entries
    bundle('"entry": null'), bundle('"entry": {}'), bundle('"entry": ""'), bundle('"entry": false'),
    bundle('"entry": {"resource": {}}'), bundle('"entry": "x"'), bundle('"entry": 3'),
    bundle(entries({"resource": patient(3)}, "not an entry", {"resource": patient(4)})),
    bundle(entries({"resource": patient(5)}, None)),
    bundle(entries({"resource": {"resourceType": "Observation", "valueQuantity": {"value": 123456789012345678901234567890}}})),
    bundle(entries({"resource": patient(12)}, {"resource": {"resourceType": "Observation", "valueInteger": 2**64 + 1}},
                   {"resource": patient(13)})),  # ijson refuses the integer after one entry: the rest read whole
    bundle(entries({"resource": patient(6)})) + b"  \n",
    bundle(entries({"resource": patient(7)})) + b" trailing",
    bundle(entries({"resource": patient(8)}))[:-30],  # cut short
    bundle(entries({"resource": patient(9)})).replace(b"F9", b"\xff\xfe"),  # not UTF-8
    bundle(entries({"resource": patient(10)})).replace(b"1.1", b"1e400"),
    b'{"id": "b", "resourceType": "Bundle", ' + entries({"resource": patient(11)}).encode() + b"}",  # read whole
    b'{"resourceType": "Patient", "id": "p"}', b"[1, 2]", b'{"resourceType": 3}', b"  ", b"{",
    '\ufeff{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}'.encode("utf-16"),
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_streamed_json_reads_what_the_whole_bundle_gives(body):
    assert streamed(body, {}) == whole(body, {})
    assert streamed(io.BytesIO(body), {"version": "R5"}) == whole(body, {"version": "R5"})


class CountingStream(io.BytesIO):
    def read(self, size=-1):
        chunk = super().read(size)
        self.served = getattr(self, "served", 0) + len(chunk)
        return chunk


def test_a_large_bundle_yields_its_first_resource_before_the_payload_is_read():
    body = CountingStream(bundle('"type": "collection"', entries(*({"resource": patient(n)} for n in range(20_000)))))
    resources = fhir.read(body, {})
    assert next(resources)["id"] == "p0"
    assert body.served < len(body.getvalue()) / 10
    assert sum(1 for _ in resources) == 19_999
