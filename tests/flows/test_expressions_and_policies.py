"""JSONata expressions and filters in mappings, the extra functions, and the record policies
(reject_record, reject_payload, halt) and pass-through, through the engine."""
import csv
import io
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.engine import RunFailure, execute
from flows.expressions import ExpressionError, Scope, compile_expression
from flows.mapping import FieldError, MappingError, compile_mapping
from flows.models import Flow
from formats.models import Format

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"



def evaluate(text, record=None, lookups=None, **scope):
    return compile_expression(text, lookups).evaluate(record if record is not None else {}, Scope(**scope))


@pytest.mark.parametrize("text, record, expected", [
    ('first & " " & last', {"first": "Ann", "last": "Lee"}, "Ann Lee"),
    ("$sum(lines.(qty * price))", {"lines": [{"qty": 2, "price": 1.5}, {"qty": 1, "price": 4}]}, 7),
    ('age >= 18 ? "adult" : "minor"', {"age": 17}, "minor"),
    ('$coalesce(nick, "", name, "?")', {"name": "Bo"}, "Bo"),
    ('$parseDate(d, "%d/%m/%Y")', {"d": "31/12/2020"}, "2020-12-31"),
    ('$parseDate(d, "%d/%m/%Y %H:%M")', {"d": "31/12/2020 08:15"}, "2020-12-31T08:15:00"),
    ('$formatDate(d, "%d.%m.%Y")', {"d": "2021-01-02"}, "02.01.2021"),
    ('$toTimeZone(t, "America/New_York")', {"t": "2021-07-01T12:00:00Z"}, "2021-07-01T08:00:00-04:00"),
    ("$lookup({'a': 1}, k)", {"k": "a"}, 1),
    ("missing.path", {"a": 1}, None),
])
def test_expressions_and_functions(text, record, expected):
    assert evaluate(text, record) == expected


def test_lookup_tables_payload_message_and_parent():
    lookups = {"units": {"mg": "milligram"}}
    assert evaluate('$lookup("units", u)', {"u": "mg"}, lookups) == "milligram"
    assert evaluate('$lookup("units", u)', {"u": "kg"}, lookups) is None
    assert evaluate("$payload.order & '/' & $parent.line & '/' & $message.id", {},
                    payload={"order": "O1"}, parent={"line": 3}, message={"id": "m-1"}) == "O1/3/m-1"


@pytest.mark.parametrize("text, words", [
    ('$lookup("nope", u)', "no lookup table named 'nope'"),
    ('$toTimeZone("2021-01-01T00:00:00Z", "Mars/Base")', "unknown time zone"),
    ('$parseDate("2021", "%d/%m/%Y")', "does not match"),
    ('u + 1', "must evaluate to a number"),
    ("( $f := function($n){ $f($n + 1) }; $f(0) )", "too long or too deep"),
])
def test_an_evaluation_error_is_a_readable_expression_error(text, words):
    with pytest.raises(ExpressionError) as caught:
        evaluate(text, {"u": "mg"})
    assert words in caught.value.reason


def test_a_syntax_error_names_the_field_and_the_position():
    with pytest.raises(MappingError) as caught:
        compile_mapping({"fields": [{"target": "total", "expr": "price * (qty"}]})
    assert caught.value.field == "total" and "syntax error" in caught.value.reason
    with pytest.raises(MappingError) as caught:
        compile_mapping({"filter": "a ==", "fields": [{"target": "a", "source": "a"}]})
    assert caught.value.field == "filter"


def test_an_expression_error_names_the_field():
    mapping = compile_mapping({"fields": [{"target": "next", "expr": "n + 1"}]})
    with pytest.raises(FieldError) as caught:
        mapping.apply({"n": "x"}, Scope())
    assert caught.value.field == "next" and "expression failed" in caught.value.reason


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcn"), inner, max_size=3),
                    max_leaves=12))
def test_mapping_with_expressions_is_total_and_deterministic(tree):
    mapping = compile_mapping({"filter": "$exists(a) or $exists(n)", "fields": [
        {"target": "a", "source": "a"}, {"target": "sum", "expr": "n + 1", "type": "decimal"},
        {"target": "joined", "expr": "$join($string(a), '-')"}, {"target": "c", "source": "c[*].b", "default": "none"}]})

    def once():
        try:
            if not mapping.keep(tree, Scope(payload=tree)):
                return ("filtered",)
            return ("ok", orjson.dumps(mapping.apply(tree, Scope(payload=tree)), default=str))
        except FieldError as exc:  # the only failure allowed out: a reported field error
            return ("error", exc.field, exc.reason)

    assert once() == once()


@pytest.fixture
def people_flow(user):
    def make(on_error: str, mapping: dict | None = None) -> Flow:
        source = Format.objects.create(owner=user, name="j", kind="json", options={})
        out = Format.objects.create(owner=user, name="c", kind="csv", options={"header": True})
        return Flow.objects.create(owner=user, name="people", source_format=source, destination_format=out,
                                   on_error=on_error, mapping=mapping or {"records": "[*]", "fields": [
                                       {"target": "id", "source": "id", "type": "integer"},
                                       {"target": "name", "expr": "$uppercase(name)"}]})
    return make


PEOPLE = json.dumps([{"id": 1, "name": "ann"}, {"id": "two", "name": "bo"}, {"id": 3, "name": "cy"}]).encode()


def rows(output: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(output.decode())))


def test_reject_record_leaves_the_bad_record_out_and_keeps_its_reason(people_flow):
    result = execute(people_flow("reject_record"), PEOPLE)
    assert [r["id"] for r in rows(result.output)] == ["1", "3"]
    assert result.rejected == [{"index": 1, "reason": "field 'id': 'two' is not an integer (type integer)"}]
    assert any("rejected record 2" in line for line in result.log)


def test_reject_payload_fails_the_whole_payload_as_bad_data(people_flow):
    with pytest.raises(RunFailure) as caught:
        execute(people_flow("reject_payload"), PEOPLE)
    assert caught.value.bad_data and "record 2" in caught.value.reason and "whole payload" in caught.value.reason


def test_halt_delivers_what_came_before_and_fails_the_run(people_flow, user, tmp_path):
    from connections.models import Connection

    flow = people_flow("halt")
    flow.destination_connection = Connection.objects.create(owner=user, name="o", kind="folder", options={"path": str(tmp_path)})
    flow.destination_options = {"file_name": "out.csv"}
    flow.save()
    with pytest.raises(RunFailure) as caught:
        execute(flow, PEOPLE, message_id="m1")
    assert "halted at record 2" in caught.value.reason
    assert [r["id"] for r in rows((tmp_path / "out.csv").read_bytes())] == ["1"]


def test_a_filter_keeps_truthy_records_and_passthrough_keeps_unmapped_fields(people_flow):
    flow = people_flow("reject_record", {"records": "[*]", "filter": "qty > 0", "passthrough": True,
                                         "fields": [{"target": "sku", "expr": "$lowercase(sku)"}]})
    body = json.dumps([{"sku": "A", "qty": 2, "bin": "x"}, {"sku": "B", "qty": 0}, {"sku": "C", "qty": 5}]).encode()
    result = execute(flow, body)
    assert rows(result.output) == [{"sku": "a", "qty": "2", "bin": "x"}, {"sku": "c", "qty": "5", "bin": ""}]
    assert result.filtered == 1 and "filtered out 1" in result.log[0]


def test_hl7_expressions_see_single_repetitions_as_values(user):
    source = Format.objects.create(owner=user, name="h", kind="hl7v2", options={})
    out = Format.objects.create(owner=user, name="j", kind="json", options={})
    flow = Flow.objects.create(owner=user, name="oru", source_format=source, destination_format=out, mapping={
        "records": "OBX[*]", "filter": "OBX.`2` = 'NM'", "fields": [
            {"target": "test", "expr": "OBX.`3`.`2` & ' (' & OBX.`3`.`1` & ')'"},
            {"target": "patient", "expr": "$parent.PID.`5`.`1`"},
            {"target": "value", "source": "OBX.5.1", "type": "decimal"}]})
    result = execute(flow, (FIXTURES / "hl7v2" / "oru-r01.input.hl7").read_bytes())
    records = orjson.loads(result.output)
    assert [r["value"] for r in records] == ["95", "0.84", "5.6"] and result.filtered == 1  # the ST comment
    assert records[0]["test"] == "Glucose (2345-7)" and records[0]["patient"] == "Okafor"


NATIVE = ["a & b", "a & ' ' & c.d", "c.e[0] & '-' & c.d", "n > 3", "n <= 2.5", "n = 4", "n != 0", "c.n >= -1",
          "a & c.e[1]"]
leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False) | st.text("ab ", max_size=3)
values = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "n"]), inner, max_size=4), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "n"]), values, max_size=6), st.sampled_from(NATIVE))
def test_the_native_shortcut_answers_what_jsonata_answers(record, text):
    import jsonata

    from flows.expressions import _Fallback

    expression = compile_expression(text)
    assert expression._native is not None
    try:
        native = expression._native(record)
    except _Fallback:
        return
    try:
        reference = jsonata.Jsonata(text).evaluate(record)
    except jsonata.JsonataError:
        pytest.fail(f"native answered {native!r} where JSONata fails")
    assert native == reference and type(native) is type(reference)
