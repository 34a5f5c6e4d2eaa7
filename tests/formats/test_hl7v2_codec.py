"""HL7 v2 codec: DESIGN's mapping paths on real message shapes, batches, writing and ACKs."""
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.expressions import Scope
from flows.mapping import compile_mapping
from formats.codecs import CodecError, codecs
from formats.codecs.hl7v2_codec import build_ack, mllp_frame

hl7 = codecs.get("hl7v2")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"


def message(name: str) -> dict:
    (document,) = hl7.read((FIXTURES / name).read_bytes(), {})
    return document


def mapped(document: dict, fields: dict, records: str | None = None) -> list[dict]:
    mapping = compile_mapping({"records": records, "fields": [{"target": t, "source": s} for t, s in fields.items()]})
    return [mapping.apply(record, Scope(payload=document, parent=parent)) for record, parent in mapping.records_of(document)]


@pytest.mark.parametrize("path, expected", [
    ("MSH.1", "|"),
    ("MSH.2", "^~\\&"),
    ("MSH.9.2", "A01"),
    ("MSH.10", "MSG00417"),
    ("PID.5.1", "Okafor"),
    ("PID.5.2", "Adaeze"),
    ("PID.7", "19840712"),
    ("PID.7.1", "19840712"),  # a field without components answers .1
    ("PID.8.1.1", "F"),
    ("PID.3[1].1", "918-22-4471"),
    ("PID.3[0].5", "MR"),
    ("PID.3.1", "NV48213"),  # an unindexed repeating field reads its first repetition
    ("PID.3[*].4", ["NORTHVALE", "USSSA"]),
    ("PID.13[1].4", "ada.okafor@example.org"),
    ("AL1.5", "Hives & swelling"),
    ("PID.99", None),
    ("ZZZ.1", None),
])
def test_design_paths_on_an_adt_a01(path, expected):
    assert mapped(message("adt-a01.input.hl7"), {"x": path}) == [{"x": expected}]


def test_obx_records_keep_their_segment_name_and_reach_the_message_root():
    rows = mapped(message("oru-r01.input.hl7"),
                  {"patient": "$.PID.3.1", "code": "OBX.3.1", "value": "OBX.5.1", "unit": "OBX.6.1", "flag": "OBX.8"},
                  records="OBX[*]")
    assert rows[:3] == [
        {"patient": "NV48213", "code": "2345-7", "value": "95", "unit": "mg/dL", "flag": "N"},
        {"patient": "NV48213", "code": "2160-0", "value": "0.84", "unit": "mg/dL", "flag": "N"},
        {"patient": "NV48213", "code": "2823-3", "value": "5.6", "unit": "mmol/L", "flag": "H"},
    ]
    assert rows[3]["value"] == "Sample slightly haemolysed\nrepeat if clinically indicated"


def test_a_single_segment_as_records_is_one_record_with_its_name():
    assert mapped(message("adt-a01.input.hl7"), {"family": "PID.5.1"}, records="PID") == [{"family": "Okafor"}]
    assert mapped(message("adt-a01.input.hl7"), {"allergy": "AL1.3.2"}, records="AL1[*]") == [{"allergy": "Penicillin"}]


def test_a_batch_is_one_document_per_message():
    documents = list(hl7.read((FIXTURES / "batch.input.hl7").read_bytes(), {}))
    assert [d["MSH"]["10"] for d in documents] == ["B0314-1", "B0314-2"]
    assert "FHS" not in documents[0] and "BTS" not in documents[1]


def test_several_msh_without_batch_headers_and_any_line_ending():
    one = (FIXTURES / "adt-a01.input.hl7").read_bytes()
    for ending in (b"\r", b"\n", b"\r\n"):
        body = mllp_frame(one.replace(b"\r", ending)) + one.replace(b"\r", ending)
        assert [d["MSH"]["10"] for d in hl7.read(body, {})] == ["MSG00417", "MSG00417"]


def test_write_then_read_gives_the_same_tree():
    for name in ("adt-a01.input.hl7", "oru-r01.input.hl7", "mllp-custom-separators.input.hl7"):
        original = message(name)
        assert list(hl7.read(hl7.write([original], [], {}, single=True), {})) == [original]


def test_write_escapes_separators_in_values():
    data = hl7.write([{"MSH": {"9": "ADT^A01"}, "NTE": {"3": "a|b^c~d\\e&f\nline"}}], [], {}, single=True)
    assert data.split(b"\r")[1] == b"NTE|||a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\.br\\line"
    (document,) = hl7.read(data, {})
    assert document["NTE"]["3"] == "a|b^c~d\\e&f\nline"


@pytest.mark.parametrize("record, reason", [
    ({"pid": {"1": "x"}}, "not a segment name"),
    ({"PID": {"one": "x"}}, "not an HL7 position"),
    ({"PID": {"3": [["a"]]}}, "only a whole field can repeat"),
    ({"PID": {"3": {"1": {"1": {"1": "x"}}}}}, "sub-component"),
    ({"PID": "x"}, "must be a dict"),
])
def test_write_refuses_what_hl7_cannot_say(record, reason):
    with pytest.raises(CodecError) as error:
        hl7.write([record], [], {}, single=True)
    assert reason in error.value.reason and error.value.location.startswith("record 1")


def test_ack_carries_the_original_control_id_and_swaps_the_applications():
    ack = message_of(build_ack((FIXTURES / "oru-r01.input.hl7").read_bytes()))
    assert ack["MSA"] == {"1": "AA", "2": "LAB55021"}
    assert (ack["MSH"]["3"], ack["MSH"]["5"], ack["MSH"]["9"]) == ("EHR", "NVLAB", {"1": "ACK", "2": "R01", "3": "ACK"})
    nak = message_of(build_ack(message("adt-a01.input.hl7"), "AE", "PID-3 unknown"))
    assert nak["MSA"] == {"1": "AE", "2": "MSG00417", "3": "PID-3 unknown"}


def test_an_unreadable_message_still_gets_a_reject():
    ack = message_of(build_ack(b"not hl7 at all"))
    assert ack["MSA"]["1"] == "AR" and "segment name" in ack["MSA"]["3"]


def message_of(data: bytes) -> dict:
    (document,) = hl7.read(data, {})
    return document


def test_infer_fields_lists_segment_field_component_paths():
    fields = hl7.infer_fields((FIXTURES / "oru-r01.input.hl7").read_bytes(), {})
    assert {"MSH.10", "PID.3.1", "PID.5.1", "OBX[*].5", "OBX[*].3.2"} <= set(fields)


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x0b\x1c"), min_size=1, max_size=6)
components = st.dictionaries(st.sampled_from(["1", "2", "3"]), text | st.fixed_dictionaries({"1": text, "2": text}),
                             min_size=1).filter(lambda d: set(d) != {"1"})
values = text | components
fields_ = st.dictionaries(st.sampled_from([str(n) for n in range(1, 8)]), values | st.lists(values, min_size=2, max_size=3),
                          min_size=1, max_size=4)


@given(st.lists(fields_, min_size=1, max_size=3), fields_)
def test_write_then_read_round_trips(obx, pid):
    record = {"MSH": {"1": "|", "2": "^~\\&", "9": {"1": "ORU", "2": "R01"}, "10": "C1"}, "PID": pid,
              "OBX": obx if len(obx) > 1 else obx[0]}
    assert list(hl7.read(hl7.write([record], [], {}, single=True), {})) == [record]


def test_plain_trees_keep_their_path_behaviour():
    # Only HL7 values answer `.1` or an unindexed step into repetitions; JSON strings and lists do not.
    assert mapped({"a": "x", "b": [{"c": 1}]}, {"a1": "a.1", "bc": "b.c"}) == [{"a1": None, "bc": None}]
    assert mapped({"b": [{"c": 1}, {"c": 2}]}, {"c": "c"}, records="b[*]") == [{"c": 1}, {"c": 2}]
