"""Settings that were API-only have form fields on the edit pages: a listener's IP allow-list,
CORS origins, rate and concurrency limits, duplicate window and retention; a flow's
concurrency, ordering, lookups and retry policy; every object's teams. They are validated by
the API's serializers, with each error beside its field."""
import html
import re

import pytest
from django.contrib.auth.models import Group

from flows.models import Flow
from listeners.models import Listener
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def field(answer, name: str) -> str:
    """The HTML of one field's block on a form page."""
    text = html.unescape(answer.content.decode())
    pattern = rf'<div class="field[^"]*" data-field="{name}">(.*?)</div>\s*(?=<div class="field|</fieldset>)'
    found = re.search(pattern, text, re.S)
    assert found, f"no field {name}"
    return found.group(0)


LISTENER = {"name": "lab", "path": "lab", "mode": "async", "auth": "token", "methods": "POST",
            "max_body_bytes": "1000", "enabled": "on"}


def test_a_listener_s_access_limits_and_teams_are_set_on_its_edit_page(logged_in, user):
    lab, _ = Group.objects.create(name="lab"), Group.objects.create(name="not mine")
    user.groups.add(lab)
    listener = Listener.objects.create(owner=user, name="lab", path="lab", auth="token")
    form = logged_in.get(f"/listeners/{listener.pk}/edit")
    assert 'value="30"' in field(form, "retention_days")
    teams = field(form, "teams")
    assert "lab" in teams and "not mine" not in teams  # only the user's own teams are offered
    answer = logged_in.post(f"/listeners/{listener.pk}/edit", {
        **LISTENER, "access.ip_allowlist": "10.0.0.0/8\n2001:db8::1", "access.cors_origins": "https://App.example.com/",
        "limits.rate_limit": "2.5", "limits.max_concurrent": "4", "limits.dedupe_window_seconds": "60",
        "limits.retention_days": "0", "sharing.teams": [str(lab.pk)]})
    assert answer.status_code == 302, html.unescape(answer.content.decode())
    listener.refresh_from_db()
    assert listener.ip_allowlist == ["10.0.0.0/8", "2001:db8::1"]
    assert listener.cors_origins == ["https://app.example.com"]
    assert (listener.rate_limit, listener.max_concurrent, listener.dedupe_window_seconds, listener.retention_days) == \
        (2.5, 4, 60, 0)
    assert list(listener.teams.all()) == [lab]
    form = logged_in.get(f"/listeners/{listener.pk}/edit")
    assert "10.0.0.0/8\n2001:db8::1" in field(form, "ip_allowlist")
    assert f'value="{lab.pk}" checked' in field(form, "teams")


def test_bad_listener_settings_are_refused_beside_their_field(logged_in, user):
    listener = Listener.objects.create(owner=user, name="lab", path="lab", auth="token")
    theirs = Group.objects.create(name="theirs")
    answer = logged_in.post(f"/listeners/{listener.pk}/edit", {
        **LISTENER, "access.ip_allowlist": "10.0.0.300", "access.cors_origins": "https://x.example.com/path",
        "limits.rate_limit": "-1", "sharing.teams": [str(theirs.pk)]})
    assert answer.status_code == 400
    assert "'10.0.0.300' is not an address or CIDR range" in field(answer, "ip_allowlist")
    assert "is not an origin" in field(answer, "cors_origins")
    assert "requests per second, 0 for no limit" in field(answer, "rate_limit")
    assert "does not exist" in field(answer, "teams")
    listener.refresh_from_db()
    assert listener.ip_allowlist == [] and listener.rate_limit == 0


def flow_form(flow: Flow, **more) -> dict:
    return {"name": flow.name, "listener": str(flow.listener_id), "source_format": str(flow.source_format_id),
            "trigger": "event", "on_error": "reject_record", "destination.connection": str(flow.destination_connection_id),
            "destination.format": str(flow.destination_format_id), "destination.options.file_name": "{message_id}.csv",
            **more}


def test_a_flow_s_retry_policy_concurrency_ordering_and_lookups_are_set_on_its_edit_page(logged_in, async_flow):
    answer = logged_in.post(f"/flows/{async_flow.pk}/edit", flow_form(
        async_flow, **{"retry.count": "5", "retry.backoff": "1.5", "running.concurrency": "2",
                       "running.ordering": "fifo", "running.lookups": '{"country": {"FR": "France"}}'}))
    assert answer.status_code == 302, html.unescape(answer.content.decode())
    async_flow.refresh_from_db()
    assert async_flow.retry == {"count": 5, "backoff": 1.5}
    assert (async_flow.concurrency, async_flow.ordering) == (2, "fifo")
    assert async_flow.lookups == {"country": {"FR": "France"}}
    form = logged_in.get(f"/flows/{async_flow.pk}/edit")
    assert 'value="5"' in field(form, "count") and '"FR": "France"' in field(form, "lookups")
    assert '<option value="fifo" selected>' in field(form, "ordering")


def test_bad_flow_settings_are_refused_beside_their_field(logged_in, async_flow):
    answer = logged_in.post(f"/flows/{async_flow.pk}/edit", flow_form(
        async_flow, **{"retry.count": "0", "running.lookups": "{not json"}))
    assert answer.status_code == 400
    assert "not valid JSON" in field(answer, "lookups")
    answer = logged_in.post(f"/flows/{async_flow.pk}/edit", flow_form(async_flow, **{"retry.count": "0"}))
    assert answer.status_code == 400 and "0 is less than the minimum of 1" in field(answer, "count")
    answer = logged_in.post(f"/flows/{async_flow.pk}/edit", flow_form(async_flow, **{"running.concurrency": "-3"}))
    assert answer.status_code == 400 and "greater than or equal to 0" in field(answer, "concurrency")
    async_flow.refresh_from_db()
    assert async_flow.retry == {} and async_flow.concurrency == 0
