"""The engine streams records from reader to writer (through a spool file) with the same
outcome as mapping every record first: the same bytes, counts, rejections, log and
failures, for each record policy, with and without a folder connection; and a payload
that reject_payload refuses delivers nothing."""
import json

import pytest

from connections.models import Connection
from flows import engine
from flows.engine import RunFailure, execute
from flows.models import Flow
from formats.models import Format

pytestmark = pytest.mark.django_db

GOOD = [{"id": i, "name": f"n{i}", "note": "=x" if i % 7 == 0 else "é"} for i in range(2500)]
BAD_AT_3 = [*GOOD[:3], {"id": "three", "name": "x"}, *GOOD[3:10], {"id": "x", "name": "y"}]


@pytest.fixture
def make_flow(user, tmp_path):
    def make(destination_kind: str, destination_options: dict, on_error: str, folder: bool) -> Flow:
        source = Format.objects.create(owner=user, name="in", kind="json", options={})
        out = Format.objects.create(owner=user, name="out", kind=destination_kind, options=destination_options)
        connection = (Connection.objects.create(owner=user, name="o", kind="folder", options={"path": str(tmp_path)})
                      if folder else None)
        return Flow.objects.create(
            owner=user, name="stream", source_format=source, destination_format=out, on_error=on_error,
            destination_connection=connection, destination_options={"file_name": "{message_id}.out"},
            mapping={"records": "[*]", "fields": [{"target": "id", "source": "id", "type": "integer"},
                                                  {"target": "name", "expr": "$uppercase(name)"},
                                                  {"target": "note", "source": "note"}]})
    return make


def outcome(flow: Flow, body: bytes, tmp_path, stream: bool, name: str):
    try:
        result = execute(flow, body, message_id=name, stream=stream)
    except RunFailure as exc:
        written = (tmp_path / f"{name}.out").read_bytes() if (tmp_path / f"{name}.out").exists() else None
        return ("failed", exc.reason, exc.bad_data, written)
    written = (tmp_path / f"{name}.out").read_bytes() if (tmp_path / f"{name}.out").exists() else None
    log = [line.replace(name, "NAME") for line in result.log]
    return (result.output, result.records_in, result.records_out, result.rejected, result.filtered, log, written)


@pytest.mark.parametrize("destination_kind, destination_options", [
    ("csv", {"header": True}), ("csv", {"header": False, "delimiter": ";", "encoding": "latin-1"}),
    ("json", {}), ("json", {"lines": True}),
])
@pytest.mark.parametrize("on_error", ["reject_record", "reject_payload", "halt"])
@pytest.mark.parametrize("folder", [False, True])
@pytest.mark.parametrize("records", [GOOD, BAD_AT_3, [], [{"id": "bad"}]], ids=["good", "bad", "none", "all-bad"])
def test_streaming_gives_what_mapping_every_record_first_gives(make_flow, tmp_path, destination_kind, destination_options,
                                                               on_error, folder, records):
    flow = make_flow(destination_kind, destination_options, on_error, folder)
    body = json.dumps(records).encode()
    streamed = outcome(flow, body, tmp_path, True, "streamed")
    collected = outcome(flow, body, tmp_path, False, "collected")
    assert streamed == collected


def test_an_output_the_encoding_cannot_hold_fails_as_a_write_error_after_the_record_policy(make_flow, tmp_path):
    flow = make_flow("csv", {"encoding": "ascii"}, "reject_payload", True)
    unencodable = json.dumps(GOOD[:5]).encode()
    assert outcome(flow, unencodable, tmp_path, True, "a") == outcome(flow, unencodable, tmp_path, False, "b")
    assert "cannot be written in ascii" in outcome(flow, unencodable, tmp_path, True, "a")[1]
    # A record reject_payload refuses, late in the payload, still decides over an early write error.
    late_bad = json.dumps([*GOOD[:2000], {"id": "bad"}]).encode()
    failed = outcome(flow, late_bad, tmp_path, True, "c")
    assert failed[0] == "failed" and "whole payload was rejected" in failed[1] and failed[3] is None


def test_a_large_run_spools_to_a_file_and_reject_payload_delivers_nothing(make_flow, tmp_path, monkeypatch):
    from formats.codecs.json_codec import JsonCodec

    monkeypatch.setattr(engine, "SPOOL_MEMORY_BYTES", 1024)  # the spool moves to disk after 1 KB
    monkeypatch.setattr(JsonCodec, "write", lambda *a: pytest.fail("the run collected its records instead of streaming"))
    flow = make_flow("json", {"lines": True}, "reject_payload", True)
    result = execute(flow, json.dumps(GOOD).encode(), message_id="big", keep_output=False)
    assert result.output == b"" and result.records_out == len(GOOD)
    assert len((tmp_path / "big.out").read_bytes().splitlines()) == len(GOOD)
    with pytest.raises(RunFailure):
        execute(flow, json.dumps([*GOOD, {"id": "bad"}]).encode(), message_id="refused", keep_output=False)
    assert not (tmp_path / "refused.out").exists()
