"""The engine with the HL7 v2, FHIR and XML codecs: DESIGN's mappings from fixture payloads to output."""
import csv
import io
from pathlib import Path

import orjson
import pytest

from flows.engine import execute
from flows.models import Flow
from formats.models import Format

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"



@pytest.fixture
def make_flow(user):
    def make(source: Format, destination: Format, mapping: dict) -> Flow:
        return Flow.objects.create(owner=user, name=f"{source.kind} to {destination.kind}", source_format=source,
                                   mapping=mapping, destination_format=destination)
    return make


def fmt(user, kind: str, **options) -> Format:
    return Format.objects.create(owner=user, name=kind, kind=kind, options=options)


def csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_hl7_oru_gives_one_csv_row_per_obx_with_the_patient_id(user, make_flow):
    flow = make_flow(fmt(user, "hl7v2"), fmt(user, "csv"), {"records": "OBX[*]", "fields": [
        {"target": "patient", "source": "$.PID.3.1"},
        {"target": "control_id", "source": "$.MSH.10"},
        {"target": "loinc", "source": "OBX.3.1"},
        {"target": "value", "source": "OBX.5.1"},
        {"target": "unit", "source": "OBX.6.1"},
        {"target": "flag", "source": "OBX.8"},
    ]})
    result = execute(flow, (FIXTURES / "hl7v2" / "oru-r01.input.hl7").read_bytes())
    rows = csv_rows(result.output)
    assert len(rows) == 4 and result.records_in == 4
    assert rows[0] == {"patient": "NV48213", "control_id": "LAB55021", "loinc": "2345-7", "value": "95", "unit": "mg/dL", "flag": "N"}
    assert [r["value"] for r in rows[1:3]] == ["0.84", "5.6"]


def test_hl7_batch_maps_each_message_with_its_own_root(user, make_flow):
    flow = make_flow(fmt(user, "hl7v2"), fmt(user, "csv"), {"records": "OBX[*]", "fields": [
        {"target": "patient", "source": "$.PID.3.1"}, {"target": "value", "source": "OBX.5", "type": "decimal"}]})
    rows = csv_rows(execute(flow, (FIXTURES / "hl7v2" / "batch.input.hl7").read_bytes()).output)
    assert rows == [{"patient": "NV48213", "value": "13.2"}, {"patient": "NV50117", "value": "6.9"}]


@pytest.mark.parametrize("payload", ["transaction-bundle.input.json", "transaction-bundle.input.xml"])
def test_a_fhir_bundle_gives_rows_from_json_or_xml_alike(user, make_flow, payload):
    flow = make_flow(fmt(user, "fhir", version="R4"), fmt(user, "csv"), {"fields": [
        {"target": "type", "source": "resourceType"},
        {"target": "family", "source": "name[0].family"},
        {"target": "code", "source": "code.coding[0].code"},
        {"target": "value", "source": "valueQuantity.value", "type": "decimal"},
    ]})
    rows = csv_rows(execute(flow, (FIXTURES / "fhir" / payload).read_bytes()).output)
    assert rows == [
        {"type": "Patient", "family": "Okafor", "code": "", "value": ""},
        {"type": "Observation", "family": "", "code": "2345-7", "value": "95.5"},
        {"type": "Observation", "family": "", "code": "2823-3", "value": "5.6"},
    ]


def test_an_xml_invoice_becomes_json(user, make_flow):
    source = fmt(user, "xml", namespaces={"inv": "urn:example:invoice:2", "cac": "urn:example:common:1"})
    flow = make_flow(source, fmt(user, "json"), {"records": "inv:Line[*]", "fields": [
        {"target": "invoice", "source": "$.@number"},
        {"target": "customer", "source": "$.cac:Customer.cac:Name"},
        {"target": "line", "source": "@number", "type": "integer"},
        {"target": "sku", "source": "inv:Item.@sku"},
        {"target": "item", "source": "inv:Item.#text"},
        {"target": "quantity", "source": "inv:Quantity.#text", "type": "integer"},
        {"target": "price", "source": "inv:Price", "type": "decimal"},
    ]})
    result = execute(flow, (FIXTURES / "xml" / "invoice.input.xml").read_bytes())
    assert orjson.loads(result.output) == [
        {"invoice": "INV-2026-0412", "customer": "Alder & Sons Ltd", "line": 1, "sku": "TENT-2P", "item": "Two-person tent",
         "quantity": 3, "price": "149.90"},
        {"invoice": "INV-2026-0412", "customer": "Alder & Sons Ltd", "line": 2, "sku": "STOVE-M", "item": "Mini stove <gas>",
         "quantity": 5, "price": "34.50"},
    ]


def test_the_whole_xml_invoice_as_one_json_object(user, make_flow):
    flow = make_flow(fmt(user, "xml"), fmt(user, "json"), {"fields": [
        {"target": "number", "source": "@number"}, {"target": "skus", "source": "Line[*].Item.@sku"}]})
    result = execute(flow, (FIXTURES / "xml" / "invoice.input.xml").read_bytes())
    assert orjson.loads(result.output) == {"number": "INV-2026-0412", "skus": ["TENT-2P", "STOVE-M"]}


def test_a_refused_xml_payload_is_bad_data(user, make_flow):
    from flows.engine import RunFailure

    flow = make_flow(fmt(user, "xml"), fmt(user, "json"), {"fields": [{"target": "x", "source": "note"}]})
    with pytest.raises(RunFailure) as failure:
        execute(flow, (FIXTURES / "xml" / "xxe.input.xml").read_bytes())
    assert failure.value.bad_data and "DOCTYPE" in failure.value.reason
