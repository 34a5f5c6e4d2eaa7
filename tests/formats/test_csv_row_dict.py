"""The CSV reader's compiled row -> record functions build the same records dict(zip()) does."""
from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.codecs import CodecError, codecs
from formats.codecs.csv_codec import COMPILED_COLUMNS, row_to_dict

names = st.text(max_size=8).map(str.strip)
cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)


@given(header=st.lists(names, min_size=1, max_size=12, unique=True), data=st.data())
def test_compiled_row_dict_equals_dict_zip(header, data):
    row = data.draw(st.lists(cells, min_size=len(header), max_size=len(header)))
    record = row_to_dict(header)(row)
    assert record == dict(zip(header, row, strict=True))
    assert list(record) == header  # the header's order


@pytest.mark.parametrize("header", [["v0", "v1", "row"], ["'", '"', "\\", "x')\nimport os\n('"], ["__builtins__", "row_dict"]])
def test_names_that_look_like_code_are_only_keys(header):
    row = [str(i) for i in range(len(header))]
    assert row_to_dict(header)(row) == dict(zip(header, row, strict=True))


@pytest.mark.parametrize("width", [1, COMPILED_COLUMNS, COMPILED_COLUMNS + 1])
def test_rows_of_another_width_fail_to_build(width):
    header = [f"c{i}" for i in range(width)]
    build = row_to_dict(header)
    assert build(list(header)) == {name: name for name in header}
    for other in (width - 1, width + 1):
        with pytest.raises(ValueError):
            build(["x"] * other)


def reference_read(text: str) -> list[dict]:
    """The reader before the compiled rows: dict(zip()) after a width check."""
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]
    header = [name.strip() for name in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


@given(header=st.lists(names.filter(bool), min_size=1, max_size=6, unique=True), data=st.data())
def test_codec_reads_the_records_dict_zip_reads(header, data):
    body = data.draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=8))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(body)
    text = out.getvalue()
    assert list(codecs.get("csv").read(text.encode(), {})) == reference_read(text)


@pytest.mark.parametrize(("payload", "location"), [(b"a,b\n1,2\n3\n", "line 3"), (b"a,b\n1,2,3\n", "line 2")])
def test_a_row_of_another_width_is_an_error_naming_its_line(payload, location):
    with pytest.raises(CodecError) as caught:
        list(codecs.get("csv").read(payload, {}))
    width = payload.splitlines()[int(location.split()[1]) - 1].count(b",") + 1
    assert caught.value.reason == f"row has {width} columns, the header has 2"
    assert caught.value.location == location


def test_rows_without_a_header_of_several_widths():
    assert list(codecs.get("csv").read(b"1\n2,3\n\n4,5,6\n", {"header": False})) == [
        {"col1": "1"}, {"col1": "2", "col2": "3"}, {"col1": "4", "col2": "5", "col3": "6"}]
