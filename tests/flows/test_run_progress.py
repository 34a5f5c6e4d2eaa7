"""A running FlowRun shows how far it has got: a slow run saves its record counts and bytes
read while it runs (throttled), and a fast run writes no progress at all."""
import io
import itertools
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flows import progress
from flows.models import FlowRun
from flows.progress import RunProgress
from flows.services import run_message
from formats.codecs import text
from formats.models import Format
from listeners.models import Message

pytestmark = pytest.mark.django_db

LINES = b"".join(b'{"id": %d, "name": {"family": "F%d"}}\n' % (i, i) for i in range(40))


class SlowBody(io.BytesIO):
    """A payload stream that takes a while per read and notes the run's row at each read."""

    def __init__(self, data: bytes, seen: list):
        super().__init__(data)
        self.seen = seen

    def read(self, size=-1):
        time.sleep(0.01)
        self.seen.extend(FlowRun.objects.values_list("status", "records_in", "records_out", "bytes_read"))
        return super().read(size)


@pytest.fixture
def lines_flow(async_flow, user):
    async_flow.source_format = Format.objects.create(owner=user, name="ndjson", kind="json", options={"lines": True})
    async_flow.mapping = {"fields": [{"target": "id", "source": "id", "type": "integer"},
                                     {"target": "family", "source": "name.family"}]}
    async_flow.save()
    return async_flow


def queued(flow, body: bytes) -> Message:
    message = Message(owner=flow.owner, listener=flow.listener, flow=flow, method="POST", path="/listen/patients",
                      status=Message.Status.QUEUED)
    message.store_body(body)
    message.save()
    return message


def test_a_slow_run_shows_its_counts_and_bytes_in_the_database_while_it_runs(lines_flow, monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.03)
    monkeypatch.setattr(text, "CHUNK_BYTES", 128)  # the reader takes the payload a few lines at a time
    seen: list = []
    monkeypatch.setattr(Message, "open_body", lambda self: SlowBody(self.read_body(), seen))
    message = queued(lines_flow, LINES)
    run = run_message(message.pk)
    partway = [row for row in seen if row[0] == "running" and 0 < row[1] < 40]
    assert partway, seen
    # Bytes read so far: at least the lines counted, and at most one chunk (plus the line
    # it cut) beyond them. The last chunk can be read before its lines are counted, so a
    # save just then shows the whole payload read with some records still to come.
    line_ends = list(itertools.accumulate(len(line) for line in LINES.splitlines(keepends=True)))
    longest = max(len(line) for line in LINES.splitlines(keepends=True))
    assert all(line_ends[row[1] - 1] <= row[3] <= line_ends[row[1] - 1] + 128 + longest for row in partway), seen
    assert any(row[3] < len(LINES) for row in partway), seen
    counts = [row[1] for row in partway]
    assert counts == sorted(counts) and counts[0] < counts[-1]  # it moves on
    assert all(row[2] <= row[1] for row in partway)
    run.refresh_from_db()
    assert (run.status, run.records_in, run.records_out, run.bytes_read) == ("succeeded", 40, 40, len(LINES))


def test_a_fast_run_makes_no_progress_update(lines_flow):
    message = queued(lines_flow, LINES)
    with CaptureQueriesContext(connection) as queries:
        run = run_message(message.pk)
    run_updates = [q["sql"] for q in queries.captured_queries
                   if q["sql"].startswith("UPDATE") and "flows_flowrun" in q["sql"]]
    assert len(run_updates) == 1 and '"finished_at"' in run_updates[0]  # only the finish
    run.refresh_from_db()
    assert (run.records_in, run.records_out, run.bytes_read) == (40, 40, len(LINES))


def test_ticks_between_due_times_write_nothing(lines_flow):
    message = queued(lines_flow, LINES)
    run = FlowRun.objects.create(flow=lines_flow, message=message)
    now = [100.0]
    tracker = RunProgress(run.pk, io.BytesIO(b"x" * 50), interval=1.0, clock=lambda: now[0])

    class Counts:
        records_in, records_out, rejected = 0, 0, []

    counts = Counts()
    with CaptureQueriesContext(connection) as queries:
        for step in range(12):  # 3 seconds of records, one every 0.25 s
            now[0] += 0.25
            counts.records_in = counts.records_out = step + 1
            tracker.tick(counts)
    assert tracker.saves == len(queries.captured_queries) == 3
    run.refresh_from_db()
    assert (run.records_in, run.records_out, run.bytes_read) == (12, 12, 0)


def test_a_failed_run_keeps_the_counts_its_progress_saved(lines_flow, monkeypatch):
    monkeypatch.setattr(progress, "PROGRESS_SECONDS", 0.0)
    body = LINES + b"not json\n"
    run = run_message(queued(lines_flow, body).pk)
    run.refresh_from_db()
    assert run.status == "failed" and "malformed JSON" in run.error
    assert run.records_in == 40 and run.bytes_read > 0


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "collect-first"])
def test_both_engine_paths_save_progress_as_records_are_read(lines_flow, monkeypatch, stream):
    from flows.engine import execute

    monkeypatch.setattr(text, "CHUNK_BYTES", 128)
    message = queued(lines_flow, LINES)
    run = FlowRun.objects.create(flow=lines_flow, message=message)
    seen: list = []
    body = SlowBody(LINES, seen)
    tracker = RunProgress(run.pk, body, interval=0.03)
    result = execute(lines_flow, body, message_id="m", run_id=run.pk, progress=tracker, stream=stream)
    assert result.records_out == 40 and tracker.saves >= 2
    assert [row for row in seen if 0 < row[1] < 40]  # counts part way, seen while reading
