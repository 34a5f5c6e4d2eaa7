"""A kept output's file appears under its own name only when the run's transaction commits: a rolled-back
run leaves neither a file nor a record, and stray `.part` files are swept."""
import os
import time

import pytest

from events.models import Output, Queue, QueueItem
from events.services import purge_old_outputs, purge_part_files
from flows import services as flow_services
from flows.services import run_message
from listeners.models import Message

pytestmark = pytest.mark.django_db


def queued(flow) -> Message:
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/x", status="queued")
    message.store_body(b'{"id": 7, "name": {"family": "Doe"}}')
    message.save()
    return message


def files(settings) -> list[str]:
    root = settings.PUSHFLOW_OUTPUT_DIR
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def queue(user, async_flow):
    queue = Queue.objects.create(owner=user, name="erp")
    queue.flows.set([async_flow])
    return queue


def test_the_file_is_moved_into_place_on_commit(queue, async_flow, settings, django_capture_on_commit_callbacks):
    message = queued(async_flow)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run_message(message.pk)
    output = Output.objects.get()
    # Before the commit only the temporary file exists: nobody can download a half-committed output.
    assert files(settings) == [output.path + ".part"] and not output.file.exists()
    for callback in callbacks:
        callback()
    assert files(settings) == [output.path]
    assert output.file.read_bytes() == b"id,family\r\n7,Doe\r\n"


def test_a_rolled_back_run_leaves_no_output_file(queue, async_flow, settings, monkeypatch,
                                                  django_capture_on_commit_callbacks):
    def broken(*args, **kwargs):
        assert files(settings) and files(settings)[0].endswith(".part")  # the output was written before the failure
        raise RuntimeError("forced rollback")

    monkeypatch.setattr(flow_services, "_finish_message", broken)
    message = queued(async_flow)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError, match="forced"):
        run_message(message.pk)
    assert callbacks == []
    assert files(settings) == []
    assert Output.objects.count() == 0 and QueueItem.objects.count() == 0


def test_part_files_left_by_a_crash_are_swept_once_old(settings):
    day = settings.PUSHFLOW_OUTPUT_DIR / "2026" / "11" / "24"
    day.mkdir(parents=True)
    old, fresh, kept = day / "a.csv.part", day / "b.csv.part", day / "c.csv"
    for path in (old, fresh, kept):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(kept, (two_hours_ago, two_hours_ago))
    assert purge_part_files() == 1
    assert not old.exists() and fresh.exists() and kept.exists()  # a fresh one may belong to a running transaction
    os.utime(fresh, (two_hours_ago, two_hours_ago))
    purge_old_outputs()
    assert not fresh.exists() and kept.exists()
