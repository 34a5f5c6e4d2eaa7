"""Codecs read the fixture payloads in tests/fixtures/<kind>/ as expected.

Each case is `<name>.input.<ext>` with `<name>.expected.json` (the list of documents
read) or `<name>.error.txt` (text the error must contain, `|`-separated), and an
optional `<name>.options.json`.
"""
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.codecs import CodecError, codecs

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KINDS = ["json", "csv"]
CASES = sorted((kind, path) for kind in KINDS for path in (FIXTURES / kind).glob("*.input.*"))


def assert_codec_reads(kind: str, input_path: Path) -> None:
    stem = input_path.name.split(".input.")[0]
    options_file = input_path.with_name(f"{stem}.options.json")
    options = json.loads(options_file.read_text()) if options_file.exists() else {}
    codec = codecs.get(kind)
    expected_file = input_path.with_name(f"{stem}.expected.json")
    if expected_file.exists():
        assert list(codec.read(input_path.read_bytes(), options)) == json.loads(expected_file.read_text(encoding="utf-8"))
        return
    wanted = input_path.with_name(f"{stem}.error.txt").read_text().strip().split("|")
    with pytest.raises(CodecError) as error:
        list(codec.read(input_path.read_bytes(), options))
    for part in wanted:
        assert part in str(error.value), (str(error.value), part)


@pytest.mark.parametrize("kind, path", CASES, ids=[f"{k}/{p.name}" for k, p in CASES])
def test_fixture(kind, path):
    assert_codec_reads(kind, path)


def test_every_fixture_has_an_expectation():
    for _, path in CASES:
        stem = path.name.split(".input.")[0]
        assert any(path.with_name(f"{stem}.{end}").exists() for end in ("expected.json", "error.txt")), path


cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@given(rows=st.lists(st.lists(cells, min_size=3, max_size=3), max_size=6), delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_csv_write_then_read_round_trips(rows, delimiter):
    codec = codecs.get("csv")
    fields = ["a", "b", "c"]
    records = [dict(zip(fields, row, strict=True)) for row in rows]
    options = {"delimiter": delimiter, "header": True, "neutralize_formulas": False}
    data = codec.write(records, fields, options, single=False)
    # A row of empty cells is written as a line of delimiters and read back the same.
    assert list(codec.read(data, options)) == records
    # With formulas neutralised (the default), only cells a spreadsheet would run change, by one quote.
    guarded = list(codec.read(codec.write(records, fields, {**options, "neutralize_formulas": True}, False), options))
    for original, read in zip(records, guarded, strict=True):
        for key, value in original.items():
            assert read[key] == value or (read[key] == "'" + value and value.startswith(("=", "+", "-", "@", "\t", "\r")))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)


@given(records=st.lists(st.dictionaries(st.text(max_size=4), json_values, max_size=3), min_size=1, max_size=4),
       lines=st.booleans())
def test_json_write_then_read_round_trips(records, lines):
    codec = codecs.get("json")
    options = {"lines": lines}
    data = codec.write(records, [], options, single=False)
    read = list(codec.read(data, options))
    assert (read if lines else read[0]) == records


@pytest.mark.parametrize("value, written", [
    ("=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK"), ("+1+2", "'+1+2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("-2+3", "'-2+3"), ("\tcmd", "'\tcmd"), ("-12.5", "-12.5"), ("plain", "plain"), (-3, "-3"),
])
def test_csv_write_neutralises_spreadsheet_formulas(value, written):
    from formats.codecs import codecs

    csv_codec = codecs.get("csv")

    def cell(options: dict) -> str:
        data = csv_codec.write([{"a": value}], ["a"], {"header": False, **options}, False)
        return next(csv_codec.read(data, {"header": False}))["col1"]

    assert cell({}).startswith(written)
    assert cell({"neutralize_formulas": False}) == str(value)


def test_csv_skip_rows_escape_and_dialect():
    from formats.codecs import codecs

    csv_codec = codecs.get("csv")
    data = b"exported by ERP\r\nrun 7\r\na;b\r\n1;x\\;y\r\n"
    rows = list(csv_codec.read(data, {"skip_rows": 2, "dialect": "semicolon", "escape": "\\"}))
    assert rows == [{"a": "1", "b": "x;y"}]
    assert list(csv_codec.read(b"a\tb\n1\t2\n", {"dialect": "excel-tab"})) == [{"a": "1", "b": "2"}]


def test_csv_write_in_an_encoding_that_cannot_hold_a_character_is_a_codec_error():
    from formats.codecs import CodecError, codecs

    with pytest.raises(CodecError) as caught:
        codecs.get("csv").write([{"a": "日本"}], ["a"], {"encoding": "latin-1"}, False)
    assert "cannot be written in latin-1" in caught.value.reason


@given(st.binary(max_size=300), st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"]), st.integers(1, 7))
def test_streamed_lines_decode_like_the_whole_payload(data, encoding, chunk):
    from formats.codecs import CodecError, decode_text
    from formats.codecs import text as text_module

    old, text_module.CHUNK_BYTES = text_module.CHUNK_BYTES, chunk  # tiny chunks: characters split across reads
    try:
        try:
            whole = decode_text(data, encoding)
        except CodecError as exc:
            with pytest.raises(CodecError) as streamed:
                list(text_module.text_lines(data, encoding))
            if encoding == "utf-8":  # offsets and lines are exact where lines are bytes apart
                assert streamed.value.location == exc.location
            return
        assert "".join(text_module.text_lines(data, encoding)) == whole
    finally:
        text_module.CHUNK_BYTES = old
