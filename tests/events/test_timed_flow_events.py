"""Timed flows are runs like any other for subscribers: a source that cannot be read is a `run.failed`."""
import time

import pytest

from connections.models import Connection
from events.models import Delivery
from flows.models import Flow
from flows.services import run_timed_flow
from listeners.signatures import verify_standard

pytestmark = pytest.mark.django_db


def test_a_timed_flow_whose_source_cannot_be_read_is_sent_as_run_failed(user, json_format, tmp_path, subscriber,
                                                                        make_subscription,
                                                                        django_capture_on_commit_callbacks):
    source = Connection.objects.create(owner=user, name="gone", kind="folder", options={"path": str(tmp_path / "missing")})
    flow = Flow.objects.create(owner=user, name="poll", source_connection=source, source_format=json_format, trigger="manual",
                               mapping={"fields": [{"target": "id", "source": "id"}]})
    _, secret = make_subscription(user, ["run.failed"], [flow])
    with django_capture_on_commit_callbacks(execute=True):
        assert run_timed_flow(flow.pk, trigger="manual") == {"queued": 0, "read": 0}
    run = flow.runs.get()
    assert (run.status, run.trigger, run.message_id) == ("failed", "manual", None)
    assert run.finished_at is not None and "reading 'gone' failed" in run.error
    assert len(subscriber.requests) == 1
    request = subscriber.requests[0]
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request["headers"].items()}
    verify_standard(meta, request["body"], [secret], tolerance=300, now=time.time())
    payload = subscriber.payloads()[0]
    assert payload["type"] == "run.failed"
    data = payload["data"]
    assert (data["flow"], data["run"], data["message"], data["status"]) == (flow.pk, run.pk, None, "failed")
    assert "does not exist" in data["error"]
    assert Delivery.objects.get().status == "succeeded"
