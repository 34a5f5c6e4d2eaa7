"""The mapping: paths, constants, types, defaults, required fields and compile errors."""
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.expressions import Scope
from flows.mapping import FieldError, MappingError, compile_mapping

PATIENT = {
    "id": "42",
    "name": [{"family": "Doe", "given": ["Jane", "Q"]}, {"family": "Roe", "given": ["J"]}],
    "birth": "1980-02-29",
    "active": "yes",
    "balance": "0.10",
    "contact": {"phone": None, "email": ""},
}


def apply(fields, record=PATIENT, root=None, **mapping):
    compiled = compile_mapping({"fields": fields, **mapping})
    return compiled.apply(record, Scope(payload=record if root is None else root))


@pytest.mark.parametrize("path, expected", [
    ("id", "42"),
    ("name[0].family", "Doe"),
    ("name[1].given[0]", "J"),
    ("name[*].family", ["Doe", "Roe"]),
    ("name[0].given[*]", ["Jane", "Q"]),
    ("name[5].family", None),
    ("missing.deeper", None),
    ("contact.phone", None),
])
def test_source_paths(path, expected):
    assert apply([{"target": "x", "source": path}]) == {"x": expected}


def test_a_single_element_reads_like_a_list_of_one():
    assert apply([{"target": "x", "source": "a[0].b"}], record={"a": {"b": 1}}) == {"x": 1}


def test_dollar_paths_read_from_the_payload_root():
    root = {"patient": {"id": "P1"}, "lines": [{"sku": "A"}]}
    assert apply([{"target": "p", "source": "$.patient.id"}, {"target": "s", "source": "sku"}],
                 record=root["lines"][0], root=root) == {"p": "P1", "s": "A"}


def test_constant_values_and_defaults():
    result = apply([{"target": "src", "value": "lab"}, {"target": "email", "source": "contact.email", "default": "n/a"},
                    {"target": "phone", "source": "contact.phone", "default": "none"}])
    assert result == {"src": "lab", "email": "n/a", "phone": "none"}


@pytest.mark.parametrize("spec, value, expected", [
    ({"type": "integer"}, "42", 42),
    ({"type": "integer"}, "4.0", 4),
    ({"type": "decimal"}, "0.10", Decimal("0.10")),
    ({"type": "decimal"}, 0.1, Decimal("0.1")),
    ({"type": "boolean"}, "yes", True),
    ({"type": "boolean"}, "0", False),
    ({"type": "string"}, 5, "5"),
    ({"type": "date"}, "1980-02-29", "1980-02-29"),
    ({"type": "date", "format": "%d/%m/%Y"}, "29/02/1980", "1980-02-29"),
    ({"type": "datetime"}, "2026-11-24T10:00:00Z", "2026-11-24T10:00:00+00:00"),
    ({"type": "datetime", "format": "%Y%m%d%H%M"}, "202611241005", "2026-11-24T10:05:00"),
])
def test_types(spec, value, expected):
    assert apply([{"target": "x", "source": "v", **spec}], record={"v": value}) == {"x": expected}


def test_decimal_keeps_exact_digits():
    total = sum(apply([{"target": "x", "source": "v", "type": "decimal"}], record={"v": "0.1"})["x"] for _ in range(3))
    assert total == Decimal("0.3")


@pytest.mark.parametrize("spec, value, reason", [
    ({"type": "integer"}, "4.5", "not a whole number"),
    ({"type": "integer"}, "four", "not an integer"),
    ({"type": "decimal"}, "NaN", "finite"),
    ({"type": "boolean"}, "maybe", "not a boolean"),
    ({"type": "date"}, "1981-02-29", "not a date"),
    ({"type": "string"}, {"a": 1}, "structure"),
    ({"type": "integer"}, float("inf"), "finite"),
    ({"type": "integer"}, "1e999999", "digits"),
    ({"type": "decimal"}, "-Infinity", "finite"),
])
def test_type_errors_name_the_field(spec, value, reason):
    with pytest.raises(FieldError) as error:
        apply([{"target": "amount", "source": "v", **spec}], record={"v": value})
    assert error.value.field == "amount" and reason in error.value.reason


def test_required_field_missing_is_an_error():
    with pytest.raises(FieldError, match="required"):
        apply([{"target": "email", "source": "contact.email", "required": True}])


@pytest.mark.parametrize("fields, field, reason", [
    ([{"source": "a"}], "fields[0]", "target"),
    ([{"target": "a"}], "a", "exactly one"),
    ([{"target": "a", "source": "x", "value": 1}], "a", "exactly one"),
    ([{"target": "a", "source": "x"}, {"target": "a", "source": "y"}], "a", "twice"),
    ([{"target": "a", "source": "x..y"}], "a", "empty or malformed"),
    ([{"target": "a", "source": "x[abc]"}], "a", "malformed"),
    ([{"target": "a", "source": "x", "type": "money"}], "a", "unknown type"),
    ([], "fields", "non-empty"),
])
def test_compile_errors_name_the_field(fields, field, reason):
    with pytest.raises(MappingError) as error:
        compile_mapping({"fields": fields})
    assert error.value.field == field and reason in error.value.reason


def test_records_path_yields_one_record_per_element():
    compiled = compile_mapping({"records": "lines[*]", "fields": [{"target": "sku", "source": "sku"},
                                                                  {"target": "order", "source": "$.order"}]})
    document = {"order": "O-1", "lines": [{"sku": "A"}, {"sku": "B"}]}
    assert [compiled.apply(r, Scope(payload=document, parent=p)) for r, p in compiled.records_of(document)] == [
        {"sku": "A", "order": "O-1"}, {"sku": "B", "order": "O-1"}]


json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["1e999999", "Infinity", "-0", "2026-02-30", "１２", "\x00"]) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c", "0"]), children, max_size=3),
    max_leaves=12,
)
PATHS = ["a", "a.b", "a[0]", "a[*].b", "b.c[1].a", "$.c", "$.a[*]", "0"]


@given(tree=json_trees, path=st.sampled_from(PATHS), type_=st.sampled_from([None, "string", "integer", "decimal", "boolean",
                                                                           "date", "datetime"]))
def test_applying_a_mapping_is_total_and_deterministic(tree, path, type_):
    compiled = compile_mapping({"fields": [{"target": "x", "source": path, **({"type": type_} if type_ else {})}]})
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(("ok", compiled.apply(tree, Scope(payload=tree))))
        except FieldError as error:  # the only failure a mapping may report
            outcomes.append(("error", error.field, error.reason))
    assert outcomes[0] == outcomes[1]


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.integers(0, 3) | st.text("ab", max_size=2),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
                    max_leaves=10),
       st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from([None, 0, 1, 2])), min_size=1, max_size=3))
def test_the_compiled_reader_reads_what_the_general_walk_reads(tree, steps):
    from flows.mapping import parse_path

    text = ".".join(name + (f"[{index}]" if index is not None else "") for name, index in steps)
    path = parse_path(text)
    assert path.reader()(tree, Scope(payload=tree)) == path.read(tree, tree)
