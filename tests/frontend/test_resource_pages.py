"""Create, edit, enable/disable and delete pages for formats, connections, listeners and flows:
options forms from each kind's JSON Schema with errors beside the field, write-only secrets,
the listener page with its curl command and test payload, the flow designer's missing steps,
and nobody else's objects."""
import html

import pytest

from accounts.models import AuditEntry
from connections.models import Connection
from flows.models import Flow
from formats.models import Format
from listeners.models import Listener, Message
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logged_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def page(answer) -> str:
    return html.unescape(answer.content.decode())


def test_a_format_is_created_from_its_kind_s_schema_with_errors_beside_the_field(logged_in, user):
    assert "CSV" in page(logged_in.get("/formats/new"))  # the kind is picked first
    form = page(logged_in.get("/formats/new?kind=csv"))
    assert 'name="options.delimiter"' in form and 'name="options.header"' in form and 'name="sample"' in form
    bad = logged_in.post("/formats/new?kind=csv", {"kind": "csv", "name": "orders", "options.delimiter": ";;;",
                                                    "options.skip_rows": "-2"})
    assert bad.status_code == 400
    text = page(bad)
    assert 'data-field="delimiter"' in text and "is too long" in text and "less than the minimum of 0" in text
    assert not Format.objects.exists()
    good = logged_in.post("/formats/new?kind=csv", {"kind": "csv", "name": "orders", "options.delimiter": ";",
                                                     "options.header": "on", "sample": "id;name\n1;Ann\n"})
    assert good.status_code == 302
    fmt = Format.objects.get(name="orders")
    assert fmt.owner == user and fmt.options["delimiter"] == ";" and fmt.options["header"] is True
    assert AuditEntry.objects.filter(action="create").count() == 1
    edit = logged_in.post(f"/formats/{fmt.pk}/edit", {"name": "orders v2", "options.delimiter": ",", "sample": ""})
    fmt.refresh_from_db()
    assert edit.status_code == 302 and fmt.name == "orders v2" and fmt.options["header"] is False and fmt.sample == ""


def test_connection_secrets_are_write_only_and_kept_when_left_blank(logged_in):
    answer = logged_in.post("/connections/new?kind=http", {
        "kind": "http", "name": "crm", "options.url": "https://crm.example.com/in", "options.auth": "bearer",
        "options.method": "POST", "secrets.token": "tok-SECRET-123"})
    assert answer.status_code == 302, page(answer)
    connection = Connection.objects.get(name="crm")
    assert connection.secrets == {"token": "tok-SECRET-123"}
    form = page(logged_in.get(f"/connections/{connection.pk}/edit"))
    assert "tok-SECRET-123" not in form and 'name="secrets.token"' in form and 'type="password"' in form
    logged_in.post(f"/connections/{connection.pk}/edit", {"name": "crm", "options.url": "https://crm.example.com/v2",
                                                          "options.auth": "bearer", "secrets.token": ""})
    connection.refresh_from_db()
    assert connection.options["url"].endswith("/v2") and connection.secrets == {"token": "tok-SECRET-123"}
    bad = logged_in.post(f"/connections/{connection.pk}/edit", {"name": "crm", "options.url": "ftp://nope"})
    assert bad.status_code == 400 and "does not match '^https?://'" in page(bad)


def test_the_listener_page_shows_url_curl_and_sends_a_test_payload(logged_in, user, async_flow):
    listener = async_flow.listener
    text = page(logged_in.get(f"/listeners/{listener.pk}/"))
    assert "http://testserver/listen/patients" in text
    assert "curl -i -X POST http://testserver/listen/patients" in text and "Authorization: Bearer $PUSHFLOW_TOKEN" in text
    answer = logged_in.post(f"/listeners/{listener.pk}/test", {"body": '{"id": 7, "name": {"family": "Test"}}',
                                                                "content_type": "application/json"}, follow=True)
    message = Message.objects.get(listener=listener)
    assert message.status == "succeeded" and message.user == user  # ran like a pushed payload
    assert f'href="/messages/{message.pk}/"' in page(answer)


def test_a_test_payload_the_format_refuses_is_a_rejected_message_with_the_reason(logged_in, user, json_format):
    listener = Listener.objects.create(owner=user, name="strict", path="strict", auth="token", format=json_format)
    logged_in.post(f"/listeners/{listener.pk}/test", {"body": "{not json"})
    message = Message.objects.get(listener=listener)
    assert message.status == "rejected" and "malformed JSON" in message.error


def test_a_listener_form_error_names_the_field(logged_in, user):
    Listener.objects.create(owner=user, name="taken", path="taken", auth="token")
    answer = logged_in.post("/listeners/new", {"name": "x", "path": "../up", "mode": "async", "auth": "token",
                                               "methods": "POST", "max_body_bytes": "0"})
    text = page(answer)
    assert answer.status_code == 400 and "no leading '/'" in text and "must be at least 1 byte" in text
    answer = logged_in.post("/listeners/new", {"name": "keyed", "path": "keyed", "mode": "async", "auth": "api_key",
                                               "methods": "POST\nPUT", "secrets.api_key": "k-123", "enabled": "on",
                                               "expected_gap_minutes": "15"})
    assert answer.status_code == 302, page(answer)
    listener = Listener.objects.get(path="keyed")
    assert listener.methods == ["POST", "PUT"] and listener.secrets == {"api_key": "k-123"}
    assert listener.expected_gap_minutes == 15 and "k-123" not in page(logged_in.get(f"/listeners/{listener.pk}/edit"))


def test_the_flow_designer_flags_what_is_missing_and_refuses_to_enable_until_it_is_there(logged_in, user, json_format,
                                                                                            csv_format, out_folder):
    listener = Listener.objects.create(owner=user, name="orders", path="orders", auth="token")
    answer = logged_in.post("/flows/new", {"name": "orders to csv", "listener": listener.pk, "source_format": json_format.pk,
                                           "trigger": "event", "on_error": "reject_record"})
    assert answer.status_code == 302, page(answer)
    flow = Flow.objects.get(name="orders to csv")
    assert not flow.enabled
    designer = page(logged_in.get(f"/flows/{flow.pk}/"))
    assert "a mapping with at least one field" in designer and "a destination format" in designer
    refused = logged_in.post(f"/flows/{flow.pk}/toggle", follow=True)
    assert "Not enabled; still missing" in page(refused)
    flow.refresh_from_db()
    assert not flow.enabled
    bad = logged_in.post(f"/flows/{flow.pk}/step/destination", {"destination.connection": out_folder.pk,
                                                               "destination.format": csv_format.pk,
                                                               "destination.options.file_name": ""
                                                               , "destination.options.mode": "sideways"})
    assert bad.status_code == 400 and "'sideways' is not one of" in page(bad)
    logged_in.post(f"/flows/{flow.pk}/step/destination", {"destination.connection": out_folder.pk,
                                                         "destination.format": csv_format.pk,
                                                         "destination.options.file_name": "{message_id}.csv"})
    flow.refresh_from_db()
    assert flow.destination_connection == out_folder and flow.destination_options["file_name"] == "{message_id}.csv"
    flow.mapping = {"fields": [{"target": "id", "source": "id"}]}
    flow.save()
    logged_in.post(f"/flows/{flow.pk}/toggle")
    flow.refresh_from_db()
    assert flow.enabled


def test_the_mapping_editor_lists_fields_from_the_sample_or_a_captured_message(logged_in, user, async_flow):
    fmt = async_flow.source_format
    fmt.sample = '{"id": 1, "name": {"family": "A", "given": ["B"]}}'
    fmt.save()
    text = page(logged_in.get(f"/flows/{async_flow.pk}/mapping"))
    assert '"source": ["id", "name.family", "name.given[*]"]' in text and "the format's sample" in text
    message = Message.objects.create(listener=async_flow.listener, owner=user, method="POST",
                                     body_text='{"order": {"total": 3}}', status="succeeded")
    text = page(logged_in.get(f"/flows/{async_flow.pk}/mapping?message={message.pk}"))
    assert '"source": ["order.total"]' in text and f'"message": "{message.pk}"' in text


def test_the_preview_api_works_from_the_page_s_session_with_csrf(user, async_flow):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert client.login(username=user.username, password=PASSWORD)
    client.get(f"/flows/{async_flow.pk}/mapping")
    token = client.cookies["csrftoken"].value
    body = {"sample": '{"id": "x1", "name": {"family": "F"}}', "mapping": {"fields": [{"target": "a", "expr": "id &"}]}}
    refused = client.post(f"/api/v1/flows/{async_flow.pk}/preview", body, content_type="application/json")
    assert refused.status_code == 403  # no CSRF token: refused
    bad = client.post(f"/api/v1/flows/{async_flow.pk}/preview", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert bad.status_code == 400 and bad.json()["field"] == "a"


def test_others_may_not_see_or_change_my_objects(client, user, other_user, async_flow, json_format):
    assert client.login(username=other_user.username, password=PASSWORD)
    assert "patients to csv" not in page(client.get("/flows/"))
    assert client.get(f"/flows/{async_flow.pk}/").status_code == 404
    assert client.get(f"/flows/{async_flow.pk}/mapping").status_code == 404
    assert client.get(f"/listeners/{async_flow.listener.pk}/").status_code == 404
    assert client.post(f"/formats/{json_format.pk}/delete").status_code == 404
    assert client.post(f"/listeners/{async_flow.listener.pk}/test", {"body": "{}"}).status_code == 404
    assert Format.objects.filter(pk=json_format.pk).exists()


def test_a_team_member_reads_but_may_not_change(client, user, other_user, json_format):
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="ops")
    other_user.groups.add(team)
    json_format.teams.add(team)
    assert client.login(username=other_user.username, password=PASSWORD)
    assert "read only" in page(client.get("/formats/"))
    assert client.get(f"/formats/{json_format.pk}/edit").status_code == 403
    assert client.post(f"/formats/{json_format.pk}/delete").status_code == 403


def test_deleting_a_format_in_use_says_why_not(logged_in, async_flow, json_format):
    answer = logged_in.post(f"/formats/{json_format.pk}/delete", follow=True)
    assert "Not deleted: still in use by: patients to csv" in page(answer)
    assert Format.objects.filter(pk=json_format.pk).exists()
    listener = async_flow.listener
    logged_in.post(f"/listeners/{listener.pk}/toggle")
    listener.refresh_from_db()
    assert not listener.enabled


def test_a_timed_flow_s_source_options_come_from_its_connection_s_schema(logged_in, user, json_format, out_folder):
    flow = Flow.objects.create(owner=user, name="poller", source_format=json_format, source_connection=out_folder,
                               trigger="interval", schedule="60", enabled=False)
    designer = page(logged_in.get(f"/flows/{flow.pk}/"))
    assert 'name="source_options.pattern"' in designer and "Timed source options (Folder)" in designer
    step = {"name": "poller", "source_connection": out_folder.pk, "source_format": json_format.pk, "trigger": "interval",
            "schedule": "60", "on_error": "reject_record", "source_options.pattern": "*.json"}
    bad = logged_in.post(f"/flows/{flow.pk}/step/source", {**step, "source_options.limit": "0"})
    assert bad.status_code == 400 and "0 is less than the minimum of 1" in page(bad)
    logged_in.post(f"/flows/{flow.pk}/step/source", {**step, "source_options.limit": "5"})
    flow.refresh_from_db()
    assert flow.source_options == {"pattern": "*.json", "limit": 5}  # blank inputs leave the defaults to apply
