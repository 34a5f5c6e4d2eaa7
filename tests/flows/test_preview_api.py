"""Preview: POST /api/v1/flows/{id}/preview and /api/v1/flows/preview apply a mapping to a sample or a
stored message and answer records, rejected records and field errors; nothing is written."""
import json

import pytest

from flows.models import FlowRun
from listeners.models import Message

pytestmark = pytest.mark.django_db

PEOPLE = json.dumps([{"id": "1", "name": {"family": "Doe"}, "born": "02/03/1980"},
                     {"id": "x", "name": {"family": "Roe"}, "born": "1990"},
                     {"id": "3", "name": {"family": "Poe"}, "born": "31/12/1999"}])
MAPPING = {"records": "$", "fields": [
    {"target": "id", "source": "id", "type": "integer"},
    {"target": "name", "expr": "$uppercase(name.family)"},
    {"target": "born", "source": "born", "type": "date", "format": "%d/%m/%Y"},
]}


def test_preview_of_a_saved_flow_on_a_sample_maps_without_writing(api, async_flow, tmp_path):
    body = json.dumps({"id": "7", "name": {"family": "Once"}})
    response = api.post(f"/api/v1/flows/{async_flow.pk}/preview", {"sample": body}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["records"] == [{"id": 7, "family": "Once"}]
    assert response.json()["rejected"] == [] and response.json()["errors"] == []
    assert FlowRun.objects.count() == 0 and Message.objects.count() == 0
    assert not any(p.is_file() for p in (tmp_path / "out").iterdir())


def test_an_unsaved_mapping_reports_every_field_error_with_its_record(api, async_flow):
    mapping = {"records": "[*]", "fields": MAPPING["fields"]}
    response = api.post(f"/api/v1/flows/{async_flow.pk}/preview", {"sample": PEOPLE, "mapping": mapping}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["records"] == [{"id": 1, "name": "DOE", "born": "1980-03-02"},
                               {"id": 3, "name": "POE", "born": "1999-12-31"}]
    assert [r["index"] for r in data["rejected"]] == [1]
    assert {(e["field"], e["record"]) for e in data["errors"]} == {("id", 1), ("born", 1)}
    assert "not an integer" in next(e["reason"] for e in data["errors"] if e["field"] == "id")
    assert data["inputs"][0]["name"] == {"family": "Doe"}


def test_preview_on_a_stored_message_and_the_limit(api, async_flow, user):
    message = Message.objects.create(listener=async_flow.listener, owner=user, method="POST", status="succeeded")
    message.store_body(PEOPLE.encode())
    message.save()
    mapping = {"records": "[*]", "fields": [{"target": "who", "expr": "name.family & ' ' & $message.id"}]}
    response = api.post(f"/api/v1/flows/{async_flow.pk}/preview",
                        {"message": str(message.pk), "mapping": mapping, "limit": 2}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["records"] == [{"who": f"Doe {message.pk}"}, {"who": f"Roe {message.pk}"}]


def test_a_mapping_that_cannot_compile_is_a_400_naming_the_field(api, async_flow):
    bad = {"fields": [{"target": "total", "expr": "price *"}]}
    response = api.post(f"/api/v1/flows/{async_flow.pk}/preview", {"sample": "{}", "mapping": bad}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "total" and "syntax error" in response.json()["detail"]


def test_an_unreadable_sample_is_a_422_with_the_parser_reason(api, async_flow):
    response = api.post(f"/api/v1/flows/{async_flow.pk}/preview", {"sample": "{nope"}, format="json")
    assert response.status_code == 422 and "json" in response.json()["detail"]


def test_unsaved_preview_with_a_source_format_filter_and_lookups(api, json_format):
    mapping = {"records": "items[*]", "filter": "qty > 0", "fields": [
        {"target": "sku", "source": "sku"},
        {"target": "unit", "expr": "$lookup('units', unit)"},
        {"target": "order", "source": "$.order"},
        {"target": "customer", "source": "$parent.customer"},
    ]}
    sample = json.dumps({"order": "A-1", "customer": "ACME", "items": [
        {"sku": "S1", "qty": 2, "unit": "EA"}, {"sku": "S2", "qty": 0, "unit": "EA"}, {"sku": "S3", "qty": 1, "unit": "BX"}]})
    response = api.post("/api/v1/flows/preview", {"source_format": json_format.pk, "mapping": mapping, "sample": sample,
                                                  "lookups": {"units": {"EA": "each", "BX": "box"}}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["records"] == [{"sku": "S1", "unit": "each", "order": "A-1", "customer": "ACME"},
                                          {"sku": "S3", "unit": "box", "order": "A-1", "customer": "ACME"}]
    assert response.json()["filtered"] == 1


def test_preview_respects_ownership(api, other_user, json_format):
    from flows.models import Flow
    from formats.models import Format
    from listeners.models import Listener

    theirs_format = Format.objects.create(owner=other_user, name="j", kind="json", options={})
    theirs = Flow.objects.create(owner=other_user, name="t", source_format=theirs_format,
                                 mapping={"fields": [{"target": "a", "source": "a"}]})
    assert api.post(f"/api/v1/flows/{theirs.pk}/preview", {"sample": "{}"}, format="json").status_code == 404
    response = api.post("/api/v1/flows/preview", {"source_format": theirs_format.pk, "sample": "{}",
                                                  "mapping": {"fields": [{"target": "a", "source": "a"}]}}, format="json")
    assert response.status_code == 400 and "source_format" in response.json()
    listener = Listener.objects.create(owner=other_user, name="l", path="theirs")
    message = Message.objects.create(listener=listener, owner=other_user, method="POST")
    response = api.post("/api/v1/flows/preview", {"source_format": json_format.pk, "message": str(message.pk),
                                                  "mapping": {"fields": [{"target": "a", "source": "a"}]}}, format="json")
    assert response.status_code == 400 and "message" in response.json()


def test_a_preview_without_payload_uses_the_format_sample_or_says_what_is_missing(api, json_format):
    mapping = {"fields": [{"target": "a", "source": "a"}]}
    response = api.post("/api/v1/flows/preview", {"source_format": json_format.pk, "mapping": mapping}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "sample"
    json_format.sample = '{"a": 5}'
    json_format.save()
    response = api.post("/api/v1/flows/preview", {"source_format": json_format.pk, "mapping": mapping}, format="json")
    assert response.json()["records"] == [{"a": 5}]


@pytest.mark.django_db(transaction=True)
def test_a_database_lookup_is_read_once_per_run_through_a_connection(api, user, other_user, json_format, tmp_path):
    import sqlalchemy as sa

    from connections.models import Connection
    from connections.transports.database import engine_for

    url = f"sqlite:///{tmp_path / 'ref.sqlite3'}"
    with engine_for({"url": url}, {}).begin() as db:
        db.execute(sa.text("CREATE TABLE units (code TEXT PRIMARY KEY, name TEXT)"))
        db.execute(sa.text("INSERT INTO units VALUES ('mg', 'milligram'), ('l', 'litre')"))
    mine = Connection.objects.create(owner=user, name="ref", kind="database", options={"url": url})
    theirs = Connection.objects.create(owner=other_user, name="theirs", kind="database", options={"url": url})
    mapping = {"records": "[*]", "fields": [{"target": "unit", "expr": "$lookup('units', u)"}]}
    lookups = {"units": {"$database": {"connection": mine.pk, "table": "units", "key": "code", "value": "name"}}}
    answer = api.post("/api/v1/flows/preview", {"source_format": json_format.pk, "mapping": mapping, "lookups": lookups,
                                                "sample": '[{"u": "mg"}, {"u": "l"}, {"u": "kg"}]'}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["records"] == [{"unit": "milligram"}, {"unit": "litre"}, {"unit": None}]
    made = api.post("/api/v1/flows/", {"name": "units", "source_format": json_format.pk, "mapping": mapping,
                                       "lookups": {"units": {"$database": {**lookups["units"]["$database"], "connection": theirs.pk}}}},
                    format="json")
    assert made.status_code == 400 and "you may use" in made.json()["lookups"][0]
    wrong = {"units": {"$database": {"connection": mine.pk, "table": "nope", "key": "code", "value": "name"}}}
    answer = api.post("/api/v1/flows/preview", {"source_format": json_format.pk, "mapping": mapping, "lookups": wrong,
                                                "sample": '[{"u": "mg"}]'}, format="json")
    assert answer.status_code == 422 and "does not exist" in answer.json()["detail"]
