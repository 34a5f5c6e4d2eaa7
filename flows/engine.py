"""The engine: read a payload with the source codec, map each record, write with the destination codec.

Records stream one by one from the reader through the mapping into the destination
writer and a spool file, or in chunks into a database (see `execute`), so a run's memory
stays flat as payloads grow.

`execute` is pure work on bytes and a flow; it does not touch message or run rows
(the runner in services.py owns those). It raises `RunFailure` with `bad_data`
telling a caller's mistake (422) from a fault of the flow or its destination (500).
"""
from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from connections.transports import Delivery, TransportError
from formats.codecs import Codec, CodecError

from .expressions import RUN_TABLES, Scope
from .lookups import LookupTableError, database_tables
from .lookups import resolve as resolve_lookups
from .mapping import CompiledMapping, FieldError, MappingError, compile_mapping
from .models import Flow
from .progress import RunProgress

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
    field_types: dict[str, str] = field(default_factory=dict)
    # The whole payload mapped to one record: a JSON answer is that object, not a list.
    single: bool = False
    filtered: int = 0
    halted: str = ""
    # Preview only: the records as read, and every field error.
    inputs: list = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def compiled_mapping(flow: Flow) -> CompiledMapping:
    """The flow's mapping, compiled once per flow version."""
    key = (flow.pk or 0, flow.version)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    compiled = compile_mapping(flow.mapping, flow.lookups or {})
    if flow.pk:
        with _cache_lock:
            _cache[key] = compiled
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return compiled


def map_payload(flow: Flow, data: bytes, message_meta: dict | None = None,
                progress: RunProgress | None = None) -> RunResult:
    """Read the payload and map every record (no writing, no delivery)."""
    try:
        mapping = compiled_mapping(flow)
    except MappingError as exc:
        raise RunFailure(f"the flow's mapping is invalid: {exc}", bad_data=False) from None
    with run_lookups(flow.lookups, flow.owner_id):
        result = map_records(mapping, flow.source_format, data, flow.on_error, message_meta, progress=progress)
    if result.rejected and not result.records and not result.filtered:
        first = result.rejected[0]
        raise RunFailure(f"every record was rejected; record {first['index'] + 1}: {first['reason']}", bad_data=True)
    return result


@contextmanager
def run_lookups(lookups: dict, owner_id: int):
    """Read the flow's database lookup tables for this run (static ones need nothing)."""
    if not database_tables(lookups):
        yield
        return
    from django.contrib.auth import get_user_model

    from config.api import visible_to
    from connections.models import Connection

    owner = get_user_model().objects.filter(pk=owner_id).first()
    if owner is None:
        raise RunFailure("the flow has no owner to read its lookup tables as", bad_data=False)
    try:
        tables = resolve_lookups(lookups, visible_to(owner, Connection.objects.all()))
    except LookupTableError as exc:
        raise RunFailure(exc.reason, bad_data=False, retryable=True) from None
    token = RUN_TABLES.set(tables)
    try:
        yield
    finally:
        RUN_TABLES.reset(token)


def map_records(mapping: CompiledMapping, source, data: bytes, on_error: str, message_meta: dict | None = None,
                preview_limit: int | None = None, progress: RunProgress | None = None) -> RunResult:
    """Map each record of `data` read with the `source` format, following the record policy.

    reject_record leaves a bad record out (its reason kept); reject_payload fails the
    whole payload; halt keeps what was mapped before the bad record and stops there
    (`result.halted`). With `preview_limit`, every field error of the first records is
    collected instead, and nothing fails. `progress` is told of each record (not in a preview).
    """
    result = RunResult()
    if preview_limit is None:
        result.records.extend(mapped_records(mapping, source, data, on_error, result, message_meta, progress))
        return _finish(result, mapping, source)
    out = result.records
    codec = source.codec
    view = codec.expression_view if type(codec).expression_view is not Codec.expression_view else None
    meta = message_meta or {}
    try:
        for document in source.read(data, meta.get("charset", "")):
            for record, parent in mapping.records_of(document):
                if result.records_in >= preview_limit:
                    break
                index = result.records_in
                result.records_in += 1
                scope = Scope(document, meta, parent, view)
                try:
                    if not mapping.keep(record, scope):
                        result.filtered += 1
                        continue
                    mapped, errors = mapping.apply_collecting(record, scope)
                except FieldError as exc:
                    mapped, errors = None, [exc]
                result.inputs.append(record if view is None else view(record))
                if not errors:
                    out.append(mapped)
                    continue
                result.errors.extend({"field": e.field, "record": index, "reason": e.reason} for e in errors)
                result.rejected.append({"index": index, "reason": str(errors[0])})
            else:
                continue
            break  # the preview limit
    except CodecError as exc:
        raise RunFailure(f"cannot read the payload as {source.kind}: {exc}", bad_data=True) from None
    result.records_out = len(out)
    return _finish(result, mapping, source)


def mapped_records(mapping: CompiledMapping, source, data, on_error: str, result: RunResult,
                   message_meta: dict | None = None, progress: RunProgress | None = None) -> Iterator[dict]:
    """Each mapped record of `data`, as it is read, following the record policy (see
    `map_records`); the counts, rejections and a halt go into `result` as they happen,
    and `progress` (a running run's throttled counter) is ticked once per record.
    Raises RunFailure for an unreadable payload or a record reject_payload refuses."""
    codec = source.codec
    view = codec.expression_view if type(codec).expression_view is not Codec.expression_view else None
    meta = message_meta or {}
    try:
        for document in source.read(data, meta.get("charset", "")):
            for record, parent in mapping.records_of(document):
                index = result.records_in
                result.records_in += 1
                if progress is not None:
                    progress.tick(result)
                scope = Scope(document, meta, parent, view)
                try:
                    if not mapping.keep(record, scope):
                        result.filtered += 1
                        continue
                    mapped = mapping.apply(record, scope)
                except FieldError as exc:
                    if on_error == Flow.OnError.HALT:
                        result.halted = f"halted at record {index + 1}: {exc}"
                        return
                    if on_error == Flow.OnError.REJECT_PAYLOAD:
                        raise RunFailure(f"record {index + 1}: {exc}; the whole payload was rejected", bad_data=True) from None
                    result.rejected.append({"index": index, "reason": str(exc)})
                    continue
                result.records_out += 1
                yield mapped
    except CodecError as exc:
        raise RunFailure(f"cannot read the payload as {source.kind}: {exc}", bad_data=True) from None


def _finish(result: RunResult, mapping: CompiledMapping, source) -> RunResult:
    result.single = _single(mapping, source)
    targets = mapping.targets
    if mapping.passthrough:  # unmapped fields join the columns in the order they first appear
        seen = set(targets)
        for record in result.records:
            for key in record:
                if key not in seen:
                    seen.add(key)
                    targets.append(key)
    result.targets = targets
    result.field_types = {f.target: f.type for f in mapping.fields if f.type}
    return result


def _single(mapping: CompiledMapping, source) -> bool:
    return mapping.records is None and source.codec.single_document(source.options or {})


def execute(flow: Flow, data: bytes | BinaryIO, message_id: str = "", run_id: int | None = None,
            message_meta: dict | None = None, keep_output: bool = True, stream: bool = True,
            progress: RunProgress | None = None) -> RunResult:
    """Run `flow` on `data`: map, write in the destination format, deliver to its connection.

    Records stream from the reader through the mapping into the writer, spooled to a
    temporary file past SPOOL_MEMORY_BYTES, when the destination codec writes as records come
    (`Codec.streams`), its transport reads files (`Transport.accepts_file`) or there is no
    connection, the columns are known before the first record (no passthrough) and the run
    is not one whole payload to one record. Delivery starts only once every record is mapped,
    so reject_payload still delivers nothing. A transport that stores rows (`stores_rows`: a
    database) takes the records in chunks as they are mapped instead, in one transaction
    committed only when the run succeeds (see `_map_write_and_store`). `keep_output=False` (the async runner) leaves
    `result.output` empty when the output went to a connection, so a large output is never
    held in memory; `stream=False` maps every record before writing (to compare against).
    `progress` saves a long run's counts as it goes (see flows/progress.py).
    """
    try:
        mapping = compiled_mapping(flow)
    except MappingError as exc:
        raise RunFailure(f"the flow's mapping is invalid: {exc}", bad_data=False) from None
    destination = flow.destination_format or flow.source_format
    connection = flow.destination_connection
    streams = (stream and destination.codec.streams and not mapping.passthrough
               and not _single(mapping, flow.source_format))
    if streams and connection is not None and connection.transport.stores_rows:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
            result, where = _map_write_and_store(flow, mapping, data, message_meta, destination, spool, progress)
            if keep_output:
                spool.seek(0)
                result.output = spool.read()
        return _deliver(flow, result, destination, message_id, run_id, stored=where)
    if not (streams and (connection is None or connection.transport.accepts_file)):
        result = map_payload(flow, data, message_meta, progress)
        try:
            result.output = destination.codec.write(result.records, result.targets, destination.options or {},
                                                    result.single)
        except CodecError as exc:
            raise RunFailure(f"cannot write the output as {destination.kind}: {exc}", bad_data=False) from None
        return _deliver(flow, result, destination, message_id, run_id)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        result = _map_and_write(flow, mapping, data, message_meta, destination, spool, progress)
        if keep_output or connection is None:
            spool.seek(0)
            result.output = spool.read()
        return _deliver(flow, result, destination, message_id, run_id, spool)


SPOOL_MEMORY_BYTES = 4 * 1024 * 1024


def _map_and_write(flow: Flow, mapping: CompiledMapping, data, message_meta: dict | None, destination,
                   spool: BinaryIO, progress: RunProgress | None = None) -> RunResult:
    """Map records into the destination codec's writer one by one. The checks come in the order
    they had when every record was mapped before writing: the record policy, then 'every
    record was rejected', then a write error (the rest is still mapped after one)."""
    result = RunResult()
    write_error = None
    with run_lookups(flow.lookups, flow.owner_id):
        records = mapped_records(mapping, flow.source_format, data, flow.on_error, result, message_meta, progress)
        try:
            destination.codec.write_stream(records, mapping.targets, destination.options or {}, spool)
        except CodecError as exc:
            write_error = exc
            for _ in records:
                pass
    _finish(result, mapping, flow.source_format)
    _check_streamed(result, write_error, destination)
    return result


def _check_streamed(result: RunResult, write_error: CodecError | None, destination) -> None:
    """A streamed run's failures, in the order they have when every record is mapped first:
    every record rejected (bad data), then a write error."""
    if result.rejected and not result.records_out and not result.filtered:
        first = result.rejected[0]
        raise RunFailure(f"every record was rejected; record {first['index'] + 1}: {first['reason']}", bad_data=True)
    if write_error is not None:
        raise RunFailure(f"cannot write the output as {destination.kind}: {write_error}", bad_data=False)


def _map_write_and_store(flow: Flow, mapping: CompiledMapping, data, message_meta: dict | None, destination,
                         spool: BinaryIO, progress: RunProgress | None = None) -> tuple[RunResult, str]:
    """Map records into the destination codec's writer (the run's output, in `spool`) and, in
    chunks of STORE_CHUNK_ROWS, into the connection's row sink: one transaction, committed only
    once every record is mapped and written, rolled back when the run fails (so reject_payload
    stores nothing). Failures come in the order they have when every record is mapped first:
    the record policy, 'every record was rejected', a write error, then a delivery error (after
    one, the rest is still mapped, so the record policy can still decide)."""
    connection = flow.destination_connection
    result = RunResult()
    write_error: CodecError | None = None
    delivery_error: list[TransportError] = []
    with run_lookups(flow.lookups, flow.owner_id):
        records = mapped_records(mapping, flow.source_format, data, flow.on_error, result, message_meta, progress)
        try:
            sink = connection.transport.open_rows(connection.options or {}, connection.secrets,
                                                  flow.destination_options or {}, mapping.targets,
                                                  {f.target: f.type for f in mapping.fields if f.type})
            sink.__enter__()
        except TransportError as exc:
            sink, delivery_error = None, [exc]
        try:
            chunked = _stored_in_chunks(records, sink, delivery_error)
            try:
                destination.codec.write_stream(chunked, mapping.targets, destination.options or {}, spool)
            except CodecError as exc:
                write_error = exc
                for _ in chunked:
                    pass
            _finish(result, mapping, flow.source_format)
            _check_streamed(result, write_error, destination)
            if delivery_error:
                raise delivery_error[0]
        except BaseException as failure:
            if sink is not None:
                sink.__exit__(type(failure), failure, failure.__traceback__)
            if isinstance(failure, TransportError):
                raise RunFailure(f"delivery to {connection.name!r} failed: {failure.reason}", bad_data=False,
                                 retryable=failure.retryable) from None
            raise
    try:
        sink.__exit__(None, None, None)  # commit
    except TransportError as exc:
        raise RunFailure(f"delivery to {connection.name!r} failed: {exc.reason}", bad_data=False,
                         retryable=exc.retryable) from None
    return result, sink.summary


STORE_CHUNK_ROWS = 1000


def _stored_in_chunks(records: Iterator[dict], sink, delivery_error: list) -> Iterator[dict]:
    """`records` as they come, each STORE_CHUNK_ROWS also written to `sink`. After a delivery
    error (kept in `delivery_error`), records still pass through but go nowhere."""
    chunk: list[dict] = []
    for record in records:
        yield record
        if delivery_error:
            continue
        chunk.append(record)
        if len(chunk) >= STORE_CHUNK_ROWS:
            try:
                sink.write(chunk)
            except TransportError as exc:
                delivery_error.append(exc)
            chunk = []
    if chunk and not delivery_error:
        try:
            sink.write(chunk)
        except TransportError as exc:
            delivery_error.append(exc)


def _deliver(flow: Flow, result: RunResult, destination, message_id: str, run_id: int | None,
             spool: BinaryIO | None = None, stored: str | None = None) -> RunResult:
    """Log the counts, hand the output (bytes, or the spool file) to the connection, report a halt.
    `stored`: the records already went to the connection as rows (its summary, for the log)."""
    result.content_type = destination.codec.content_type
    result.log.append(
        f"read {result.records_in} records, wrote {result.records_out}, rejected {len(result.rejected)}"
        + (f", filtered out {result.filtered}" if result.filtered else "")
    )
    for rejected in result.rejected:
        result.log.append(f"rejected record {rejected['index'] + 1}: {rejected['reason']}")
    connection = flow.destination_connection
    if stored is not None:
        result.log.append(stored)
    elif connection is not None:
        now = datetime.now(UTC)
        placeholders = {
            "message_id": message_id or f"run-{run_id}",
            "run_id": run_id or "",
            "flow": flow.name,
            "flow_id": flow.pk,
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H%M%S"),
        }
        delivery = Delivery(b"" if spool is not None else result.output, result.content_type, placeholders,
                            result.records, result.targets, result.field_types, file=spool)
        try:
            where = connection.transport.write(connection.options or {}, connection.secrets, flow.destination_options or {}, delivery)
        except TransportError as exc:
            raise RunFailure(f"delivery to {connection.name!r} failed: {exc.reason}", bad_data=False, retryable=exc.retryable) from None
        result.log.append(str(where))
        if getattr(where, "body", None) is not None:  # the transport's reply answers a sync caller
            result.output, result.content_type = where.body, where.content_type
    if result.halted:
        result.log.append(result.halted)
        raise RunFailure(f"{result.halted} (the {result.records_out} records before it were delivered)", bad_data=True)
    return result
