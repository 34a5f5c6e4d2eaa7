"""The dashboard (messages per minute per listener, counts, last message, silence warning) and
the runs page's progress JSON, each showing only what the user may see."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import FlowRun
from listeners.models import Listener, Message
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_messages_per_minute_per_listener_over_the_last_hour(logged_in, user, other_user):
    now = timezone.now()
    mine = Listener.objects.create(owner=user, name="lab", path="lab", auth="token")
    theirs = Listener.objects.create(owner=other_user, name="hidden", path="hidden", auth="token")
    for minutes_ago in (0, 0, 5, 90):
        Message.objects.create(owner=user, listener=mine, method="POST", received_at=now - timedelta(minutes=minutes_ago))
    Message.objects.create(owner=other_user, listener=theirs, method="POST", received_at=now)
    data = logged_in.get("/dashboard/data").json()
    assert len(data["minutes"]) == 60
    assert [s["name"] for s in data["series"]] == ["lab"]
    counts = data["series"][0]["counts"]
    assert counts[-1] == 2 and counts[-6] == 1 and sum(counts) == 3  # the one 90 minutes ago is outside the hour


def test_the_dashboard_counts_and_warns_about_a_silent_listener(logged_in, user):
    now = timezone.now()
    quiet = Listener.objects.create(owner=user, name="nightly feed", path="nightly", auth="token", expected_gap_minutes=30)
    busy = Listener.objects.create(owner=user, name="busy feed", path="busy", auth="token", expected_gap_minutes=30)
    Message.objects.create(owner=user, listener=quiet, method="POST", status="succeeded", received_at=now - timedelta(hours=2))
    Message.objects.create(owner=user, listener=busy, method="POST", status="failed", received_at=now - timedelta(minutes=1))
    Message.objects.create(owner=user, listener=busy, method="POST", status="succeeded", received_at=now)
    text = logged_in.get("/").content.decode()
    assert "nightly feed</a> has been silent\n  for 120 minutes" in text
    assert text.count('class="warning"') == 1  # not the busy one
    assert '<div class="n" id="count-succeeded">2</div>' in text
    assert '<div class="n error" id="count-failed">1</div>' in text


def test_run_progress_answers_only_visible_runs_and_refuses_garbage(logged_in, other_user, async_flow):
    message = Message.objects.create(owner=async_flow.owner, listener=async_flow.listener, flow=async_flow, method="POST",
                                     size=2048)
    running = FlowRun.objects.create(flow=async_flow, message=message, bytes_read=1024, records_in=10)
    page = logged_in.get("/runs/").content.decode()
    assert f'data-run="{running.pk}" data-status="running"' in page
    assert '<progress data-part="bar" max="2048" value="1024"' in page and '<small data-part="percent">50%</small>' in page
    message_page = logged_in.get(f"/messages/{message.pk}/").content.decode()
    assert f'data-run="{running.pk}" data-status="running"' in message_page and "progress.js" in message_page
    data = logged_in.get(f"/runs/progress?ids={running.pk},999").json()
    assert data["runs"] == [{"id": running.pk, "status": "running", "records_in": 10, "records_out": 0,
                             "records_rejected": 0, "bytes_read": 1024, "total_bytes": 2048, "percent": 50, "error": "",
                             "finished": False}]
    assert logged_in.get("/runs/progress?ids=a;b").status_code == 400
    logged_in.logout()
    assert logged_in.login(username=other_user.username, password=PASSWORD)
    assert json.loads(logged_in.get(f"/runs/progress?ids={running.pk}").content) == {"runs": []}
