"""FHIR XML Bundles are read entry by entry as they are parsed, giving the resources (and
the errors) that converting the whole Bundle gives."""
import io
from pathlib import Path

import pytest

from formats.codecs import CodecError, codecs
from formats.codecs.fhir_codec import _resources, read_document

fhir = codecs.get("fhir")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir"
NS = 'xmlns="http://hl7.org/fhir"'
PATIENT = '<Patient><id value="p{n}"/><name><family value="F{n}"/><given value="A"/></name><active value="true"/></Patient>'


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
    (FIXTURES / "transaction-bundle.input.xml").read_bytes(),
    (FIXTURES / "patient-narrative.input.xml").read_bytes(),
    (FIXTURES / "not-fhir-namespace.input.xml").read_bytes(),
    (FIXTURES / "xxe.input.xml").read_bytes(),
    f'<Bundle {NS}><id value="b"/><entry><resource>{PATIENT.format(n=1)}</resource></entry><meta/>'
    f'<entry><fullUrl value="x"/></entry><entry><resource/></entry>'
    f'<entry><resource><Bundle><entry><resource>{PATIENT.format(n=2)}</resource></entry></Bundle></resource></entry>'
    f'<entry value="odd"/></Bundle>'.encode(),
    f'\n  <Bundle {NS}><entry><resource>{PATIENT.format(n=3)}</resource><resource>{PATIENT.format(n=4)}</resource>'
    f'</entry><entry><resource>{PATIENT.format(n=5)}</resource></entry></Bundle>'.encode(),
    f'<Bundle {NS}><entry><resource>{PATIENT.format(n=6)}</resource></entry><entry><oops></Bundle>'.encode(),
    f'<Bundle {NS}><entry><resource>{PATIENT.format(n=7)}</resource></entry></Bundle>'.encode("utf-16"),
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
@pytest.mark.parametrize("version", ["R4", "R5"])
def test_streamed_xml_reads_what_the_whole_bundle_gives(body, version):
    expected = whole(body, {"version": version})
    got = streamed(body, {"version": version})
    if expected and expected[0] == "error":
        assert got[0] == "error" and got[1] == expected[1]
        assert got[2] == expected[2] or got[1].startswith("malformed XML")  # where the parser stopped may differ
    else:
        assert got == expected


class CountingStream(io.BytesIO):
    def read(self, size=-1):
        chunk = super().read(size)
        self.served = getattr(self, "served", 0) + len(chunk)
        return chunk


def test_a_large_bundle_yields_its_first_resource_before_the_payload_is_read():
    entries = "".join(f"<entry><resource>{PATIENT.format(n=n)}</resource></entry>" for n in range(20_000))
    body = CountingStream(f'<Bundle {NS}><type value="collection"/>{entries}</Bundle>'.encode())
    resources = fhir.read(body, {})
    assert next(resources)["id"] == "p0"
    assert body.served < len(body.getvalue()) / 10
    assert sum(1 for _ in resources) == 19_999
