"""Fixed-width codec: short lines pad, long lines fail, writing pads and truncates."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.codecs import CodecError, codecs

fixed = codecs.get("fixed")
LAYOUT = {"fields": [{"name": "id", "width": 4}, {"name": "name", "width": 6}, {"name": "amount", "width": 5, "align": "right"}]}


def test_a_short_line_reads_its_missing_fields_as_empty():
    assert list(fixed.read(b"0001Ann\n", LAYOUT)) == [{"id": "0001", "name": "Ann", "amount": ""}]


def test_trailing_spaces_past_the_widths_are_allowed_but_text_is_not():
    assert list(fixed.read(b"0001Ann      12   \n", LAYOUT)) == [{"id": "0001", "name": "Ann", "amount": "12"}]
    with pytest.raises(CodecError) as error:
        list(fixed.read(b"0001Ann      12\n0002Bob      34X\n", LAYOUT))
    assert error.value.location == "line 2"


def test_write_pads_aligns_and_truncates():
    data = fixed.write([{"id": "7", "name": "Alexandra", "amount": 12}, {"id": None, "name": "Bo"}], [], LAYOUT, single=False)
    assert data == b"7   Alexan   12\n    Bo         \n"


def test_write_refuses_a_line_break_inside_a_field():
    with pytest.raises(CodecError) as error:
        fixed.write([{"id": "1", "name": "a\nb"}], [], LAYOUT, single=False)
    assert error.value.location == "record 1"


@pytest.mark.parametrize("options, where", [
    ({"fields": [{"name": "a", "width": 0}]}, "options.fields[0]"),
    ({"fields": [{"name": "a", "width": 2}, {"name": "a", "width": 2}]}, "options.fields[1]"),
    ({"fields": [{"width": 2}]}, "options.fields[0]"),
    ({"fields": [{"name": "a", "width": 2, "align": "centre"}]}, "options.fields[0]"),
])
def test_a_bad_layout_is_a_codec_error_naming_the_field(options, where):
    with pytest.raises(CodecError) as error:
        list(fixed.read(b"ab\n", options))
    assert error.value.location == where


def test_infer_fields_names_the_layout():
    assert fixed.infer_fields(b"0001Ann      12\n", LAYOUT) == ["id", "name", "amount"]


cells = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=5).map(str.strip)


@given(st.lists(st.tuples(cells, cells, cells), max_size=6), st.sampled_from(["utf-8", "utf-16"]))
def test_write_then_read_round_trips(rows, encoding):
    options = {**LAYOUT, "encoding": encoding}
    records = [{"id": a[:4].strip(), "name": b, "amount": c} for a, b, c in rows]  # a cell is read back stripped
    expected = [r for r in records if any(r.values())]  # an all-blank line is skipped on reading
    assert list(fixed.read(fixed.write(records, [], options, single=False), options)) == expected
