"""FHIR codec: JSON and XML read alike, Bundles split, validation names the path, writing."""
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from formats.codecs import CodecError, codecs

fhir = codecs.get("fhir")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fhir"


def test_xml_and_json_bundles_read_into_the_same_trees():
    as_json = list(fhir.read((FIXTURES / "transaction-bundle.input.json").read_bytes(), {}))
    as_xml = list(fhir.read((FIXTURES / "transaction-bundle.input.xml").read_bytes(), {"version": "R5"}))
    assert as_json == as_xml
    assert [r["resourceType"] for r in as_json] == ["Patient", "Observation", "Observation"]
    patient = as_xml[0]
    assert patient["name"][0]["given"] == ["Adaeze", "Nneka"] and patient["active"] is True
    assert patient["multipleBirthInteger"] == 2 and as_xml[1]["valueQuantity"]["value"] == 95.5


def test_a_single_xml_element_that_fhir_repeats_is_a_list():
    (patient,) = fhir.read(b'<Patient xmlns="http://hl7.org/fhir"><name><given value="A"/></name></Patient>', {})
    assert patient == {"resourceType": "Patient", "name": [{"given": ["A"]}]}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_valid_bundles_pass_validation(version):
    for name in ("transaction-bundle.input.json", "transaction-bundle.input.xml"):
        fhir.validate((FIXTURES / name).read_bytes(), {"version": version})


@pytest.mark.parametrize("body, path", [
    ({"resourceType": "Patient", "birthDate": "1984-13-40"}, "Patient.birthDate"),
    ({"resourceType": "Patient", "name": [{"given": "Ann"}]}, "Patient.name[0].given"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "active": "maybe"}}]},
     "Bundle.entry[0].resource"),
    ({"resourceType": "NotAThing"}, "resourceType"),
])
def test_validation_errors_name_the_path(body, path):
    with pytest.raises(CodecError) as error:
        fhir.validate(orjson.dumps(body), {})
    assert error.value.location.startswith(path) and path in error.value.reason


def test_an_r5_only_resource_is_refused_for_r4():
    body = orjson.dumps({"resourceType": "ActorDefinition", "status": "active", "type": "person"})
    fhir.validate(body, {"version": "R5"})
    with pytest.raises(CodecError):
        fhir.validate(body, {"version": "R4"})


def test_write_one_resource_or_a_collection_bundle():
    assert orjson.loads(fhir.write([{"resourceType": "Patient", "id": "1"}], [], {}, single=True)) == {
        "resourceType": "Patient", "id": "1"}
    bundle = orjson.loads(fhir.write([{"id": "1"}, {"id": "2"}], [], {}, single=False))
    assert bundle == {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"id": "1"}}, {"resource": {"id": "2"}}]}


def test_write_keeps_decimals_exact():
    assert fhir.write([{"value": Decimal("5.60")}], [], {}, single=True) == b'{"value":5.60}'
    with pytest.raises(CodecError):
        fhir.write([{"value": Decimal("NaN")}], [], {}, single=True)


def test_infer_fields_from_a_bundle():
    fields = fhir.infer_fields((FIXTURES / "transaction-bundle.input.json").read_bytes(), {})
    assert {"resourceType", "name[*].family", "name[*].given[*]", "valueQuantity.value"} <= set(fields)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
resources = st.builds(lambda t, rest: {**rest, "resourceType": t}, st.sampled_from(["Patient", "Observation"]),
                      st.dictionaries(st.text(max_size=5), json_values, max_size=4))


@given(st.lists(resources, min_size=1, max_size=4))
def test_write_then_read_round_trips(records):
    single = len(records) == 1
    assert list(fhir.read(fhir.write(records, [], {}, single=single), {})) == records
