"""Round-trip properties of the JSON and CSV codecs and their writing rules (the fixture
cases of every codec are in test_codec_kind_fixtures.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.codecs import CodecError, codecs

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
    from formats.codecs import codecs

    with pytest.raises(CodecError) as caught:
        codecs.get("csv").write([{"a": "日本"}], ["a"], {"encoding": "latin-1"}, False)
    assert "cannot be written in latin-1" in caught.value.reason


@given(st.binary(max_size=300), st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"]), st.integers(1, 7))
def test_streamed_lines_decode_like_the_whole_payload(data, encoding, chunk):
    from formats.codecs import decode_text
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
