"""The engine: read a payload with the source codec, map each record, write with the destination codec.

`execute` is pure work on bytes and a flow; it does not touch message or run rows
(the runner in services.py owns those). It raises `RunFailure` with `bad_data`
telling a caller's mistake (422) from a fault of the flow or its destination (500).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connections.transports import Delivery, TransportError
from formats.codecs import CodecError

from .mapping import CompiledMapping, FieldError, MappingError, compile_mapping
from .models import Flow

_CACHE_SIZE = 256
_cache: OrderedDict[tuple[int, int], CompiledMapping] = OrderedDict()
_cache_lock = threading.Lock()


class RunFailure(Exception):
    """A run that could not finish. `bad_data`: the payload's fault, not the flow's."""

    def __init__(self, reason: str, bad_data: bool, retryable: bool = False, timed_out: bool = False):
        self.reason = reason
        self.bad_data = bad_data
        self.retryable = retryable
        self.timed_out = timed_out
        super().__init__(reason)


@dataclass
class RunResult:
    output: bytes = b""
    content_type: str = ""
    records_in: int = 0
    records_out: int = 0
    rejected: list[dict] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    # The whole payload mapped to one record: a JSON answer is that object, not a list.
    single: bool = False


def compiled_mapping(flow: Flow) -> CompiledMapping:
    """The flow's mapping, compiled once per flow version."""
    key = (flow.pk or 0, flow.version)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    compiled = compile_mapping(flow.mapping)
    if flow.pk:
        with _cache_lock:
            _cache[key] = compiled
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return compiled


def map_payload(flow: Flow, data: bytes) -> RunResult:
    """Read the payload and map every record (no writing, no delivery)."""
    try:
        mapping = compiled_mapping(flow)
    except MappingError as exc:
        raise RunFailure(f"the flow's mapping is invalid: {exc}", bad_data=False) from None
    source = flow.source_format
    result = RunResult()
    out = result.records
    try:
        for document in source.read(data):
            for record in mapping.records_of(document):
                result.records_in += 1
                try:
                    out.append(mapping.apply(record, document))
                except FieldError as exc:
                    reason = f"record {result.records_in}: {exc}"
                    if flow.on_error == Flow.OnError.REJECT_RECORD:
                        result.rejected.append({"index": result.records_in - 1, "reason": str(exc)})
                        continue
                    raise RunFailure(reason, bad_data=True) from None
    except CodecError as exc:
        raise RunFailure(f"cannot read the payload as {source.kind}: {exc}", bad_data=True) from None
    if result.rejected and not out:
        first = result.rejected[0]
        raise RunFailure(f"every record was rejected; record {first['index'] + 1}: {first['reason']}", bad_data=True)
    result.records_out = len(out)
    result.single = mapping.records is None and source.codec.single_document(source.options or {})
    result.targets = mapping.targets
    return result


def execute(flow: Flow, data: bytes, message_id: str = "", run_id: int | None = None) -> RunResult:
    """Run `flow` on `data`: map, write in the destination format, deliver to its connection."""
    result = map_payload(flow, data)
    destination = flow.destination_format or flow.source_format
    options = destination.options or {}
    try:
        result.output = destination.codec.write(result.records, result.targets, options, result.single)
    except CodecError as exc:
        raise RunFailure(f"cannot write the output as {destination.kind}: {exc}", bad_data=False) from None
    result.content_type = destination.codec.content_type
    result.log.append(
        f"read {result.records_in} records, wrote {len(result.records)}, rejected {len(result.rejected)}"
    )
    for rejected in result.rejected:
        result.log.append(f"rejected record {rejected['index'] + 1}: {rejected['reason']}")
    connection = flow.destination_connection
    if connection is not None:
        now = datetime.now(UTC)
        placeholders = {
            "message_id": message_id or f"run-{run_id}",
            "run_id": run_id or "",
            "flow": flow.name,
            "flow_id": flow.pk,
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H%M%S"),
        }
        delivery = Delivery(result.output, result.content_type, placeholders)
        try:
            where = connection.transport.write(connection.options or {}, connection.secrets, flow.destination_options or {}, delivery)
        except TransportError as exc:
            raise RunFailure(f"delivery to {connection.name!r} failed: {exc.reason}", bad_data=False, retryable=exc.retryable) from None
        result.log.append(where)
    return result
