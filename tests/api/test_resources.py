"""CRUD on formats, connections, listeners and flows through /api/v1/, with validation that names the field."""
import pytest

from connections.models import Connection

pytestmark = pytest.mark.django_db


def test_format_crud_and_kind_and_options_validation(api):
    created = api.post("/api/v1/formats/", {"name": "lab csv", "kind": "csv", "options": {"delimiter": ";"}}, format="json")
    assert created.status_code == 201
    fid = created.json()["id"]
    assert api.get(f"/api/v1/formats/{fid}/").json()["options"] == {"delimiter": ";"}
    assert api.patch(f"/api/v1/formats/{fid}/", {"name": "renamed"}, format="json").json()["name"] == "renamed"
    bad_kind = api.post("/api/v1/formats/", {"name": "x", "kind": "yaml"}, format="json")
    assert bad_kind.status_code == 400 and "unknown kind" in bad_kind.json()["kind"][0]
    bad_options = api.post("/api/v1/formats/", {"name": "x", "kind": "csv", "options": {"header": "yes"}}, format="json")
    assert bad_options.status_code == 400 and "header" in bad_options.json()["options"][0]
    assert api.delete(f"/api/v1/formats/{fid}/").status_code == 204


def test_connection_secrets_are_write_only_and_encrypted_at_rest(api, tmp_path):
    body = {"name": "db", "kind": "folder", "options": {"path": str(tmp_path)}, "secrets": {"password": "hunter2-Secret"}}
    response = api.post("/api/v1/connections/", body, format="json")
    assert response.status_code == 201
    assert "hunter2-Secret" not in response.content.decode() and "secrets" not in response.json()
    assert response.json()["secret_names"] == ["password"]
    stored = Connection.objects.get(pk=response.json()["id"])
    assert "hunter2" not in stored.secrets_encrypted and stored.secrets == {"password": "hunter2-Secret"}
    listing = api.get("/api/v1/connections/")
    assert "hunter2" not in listing.content.decode()
    # A change without secrets keeps them; a new secret is added beside them.
    api.patch(f"/api/v1/connections/{stored.pk}/", {"secrets": {"token": "t0ken"}}, format="json")
    stored.refresh_from_db()
    assert stored.secrets == {"password": "hunter2-Secret", "token": "t0ken"}


def test_connection_test_action_says_what_failed(api, tmp_path):
    good = api.post("/api/v1/connections/", {"name": "ok", "kind": "folder", "options": {"path": str(tmp_path)}}, format="json")
    assert api.post(f"/api/v1/connections/{good.json()['id']}/test").json()["ok"] is True
    bad = api.post("/api/v1/connections/", {"name": "no", "kind": "folder", "options": {"path": str(tmp_path / "missing")}},
                   format="json")
    answer = api.post(f"/api/v1/connections/{bad.json()['id']}/test").json()
    assert answer["ok"] is False and "does not exist" in answer["detail"]


def test_listener_url_and_path_rules(api):
    response = api.post("/api/v1/listeners/", {"name": "lab", "path": "lab/results", "auth": "token"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["url"].endswith("/listen/lab/results") and body["methods"] == ["POST"] and body["mode"] == "async"
    for path in ["../x", "a//b", "a/../b", "with space", "a?b"]:
        bad = api.post("/api/v1/listeners/", {"name": "x", "path": path}, format="json")
        assert bad.status_code == 400, path
        assert "path" in bad.json()
    duplicate = api.post("/api/v1/listeners/", {"name": "again", "path": "lab/results"}, format="json")
    assert duplicate.status_code == 400 and "path" in duplicate.json()


def test_flow_round_trips_its_destination(api, json_format, csv_format, out_folder):
    listener = api.post("/api/v1/listeners/", {"name": "l", "path": "l"}, format="json").json()
    flow = {"name": "f", "listener": listener["id"], "source_format": json_format.pk, "trigger": "event", "enabled": True,
            "mapping": {"fields": [{"target": "id", "source": "id", "type": "integer"}]},
            "destination": {"connection": out_folder.pk, "format": csv_format.pk, "options": {"file_name": "{message_id}.csv"}}}
    response = api.post("/api/v1/flows/", flow, format="json")
    assert response.status_code == 201, response.json()
    got = api.get(f"/api/v1/flows/{response.json()['id']}/").json()
    assert got["destination"] == flow["destination"] and got["mapping"] == flow["mapping"]
    assert api.get(f"/api/v1/listeners/{listener['id']}/").json()["flow"] == got["id"]


def test_a_second_flow_on_the_same_listener_is_refused(api, async_flow, json_format):
    flow = {"name": "again", "listener": async_flow.listener_id, "source_format": json_format.pk,
            "mapping": {"fields": [{"target": "a", "value": 1}]}}
    response = api.post("/api/v1/flows/", flow, format="json")
    assert response.status_code == 400 and "listener" in response.json()


def test_a_mapping_that_cannot_compile_is_400_naming_the_field(api, json_format):
    flow = {"name": "f", "source_format": json_format.pk,
            "mapping": {"fields": [{"target": "ok", "source": "a"}, {"target": "age", "source": "b", "type": "number"}]}}
    response = api.post("/api/v1/flows/", flow, format="json")
    assert response.status_code == 400
    assert "'age'" in response.json()["mapping"][0] and "unknown type" in response.json()["mapping"][0]


def test_deleting_a_format_still_used_by_a_flow_is_409(api, async_flow, csv_format):
    response = api.delete(f"/api/v1/formats/{csv_format.pk}/")
    assert response.status_code == 409
    assert "still in use" in response.json()["detail"]


def test_lists_are_paginated(api):
    for i in range(3):
        api.post("/api/v1/formats/", {"name": f"f{i}", "kind": "json"}, format="json")
    page = api.get("/api/v1/formats/?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"] and page["previous"] is None
