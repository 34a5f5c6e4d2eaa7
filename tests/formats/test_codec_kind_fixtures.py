"""Every codec reads the payloads in tests/fixtures/<kind>/ as expected.

Each case is `<name>.input.<ext>` with `<name>.expected.json` (the list of documents
read) or `<name>.error.txt` (text the error must contain, `|`-separated; a refused
payload must also say where), and an optional `<name>.options.json`.
"""
import json
from pathlib import Path

import pytest

from formats.codecs import CodecError, codecs

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KINDS = ["json", "csv", "xml", "fixed", "hl7v2", "fhir"]
CASES = sorted((kind, path) for kind in KINDS for path in (FIXTURES / kind).glob("*.input.*"))


def _options(input_path: Path, stem: str) -> dict:
    options_file = input_path.with_name(f"{stem}.options.json")
    return json.loads(options_file.read_text()) if options_file.exists() else {}


def assert_codec_reads(kind: str, input_path: Path) -> None:
    """Read the fixture; compare with the expected documents, or with the expected error and its location."""
    stem = input_path.name.split(".input.")[0]
    options = _options(input_path, stem)
    codec = codecs.get(kind)
    expected_file = input_path.with_name(f"{stem}.expected.json")
    if expected_file.exists():
        documents = list(codec.read(input_path.read_bytes(), options))
        assert json.loads(json.dumps(documents)) == json.loads(expected_file.read_text(encoding="utf-8"))
        codec.validate(input_path.read_bytes(), options)
        return
    wanted = input_path.with_name(f"{stem}.error.txt").read_text().strip().split("|")
    with pytest.raises(CodecError) as error:
        list(codec.read(input_path.read_bytes(), options))
    assert error.value.location, f"{input_path.name}: the error names no location"
    for part in wanted:
        assert part in str(error.value), (str(error.value), part)


@pytest.mark.parametrize("kind, path", CASES, ids=[f"{k}/{p.name}" for k, p in CASES])
def test_fixture(kind, path):
    assert_codec_reads(kind, path)


def test_every_fixture_has_an_expectation():
    for _, path in CASES:
        stem = path.name.split(".input.")[0]
        assert any(path.with_name(f"{stem}.{end}").exists() for end in ("expected.json", "error.txt")), path


@pytest.mark.parametrize("kind", KINDS)
def test_every_codec_declares_its_contract(kind):
    codec = codecs.get(kind)
    assert codec.kind == kind and codec.label and codec.content_type
    assert codec.options_schema["type"] == "object"
    assert callable(codec.infer_fields)
