"""Preview: a mapping applied to a stored message or a sample, nothing written anywhere.

The mapping editor calls this on every edit: it answers the first records as read
and as mapped, the rejected ones with their reasons, and every field error with its
record, so a person sees the result before the flow runs for real.
"""
from __future__ import annotations

from dataclasses import dataclass

from formats.models import Format
from listeners.models import Message

from .engine import RunFailure, map_records, run_lookups
from .mapping import MappingError, compile_mapping
from .models import Flow
from .services import message_metadata

DEFAULT_LIMIT = 20
MAX_LIMIT = 500


class PreviewRefused(Exception):
    """A preview that cannot be made; `status` is the HTTP status, `field` what is wrong."""

    def __init__(self, status: int, field: str, reason: str):
        self.status = status
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass
class PreviewRequest:
    source_format: Format
    mapping: dict
    lookups: dict
    on_error: str
    data: bytes
    message: Message | None = None
    limit: int = DEFAULT_LIMIT
    owner_id: int | None = None  # whose connections database lookups may read


def request_for_flow(flow: Flow, *, message: Message | None = None, sample: str | None = None,
                     mapping: dict | None = None, lookups: dict | None = None, on_error: str | None = None,
                     limit: int = DEFAULT_LIMIT) -> PreviewRequest:
    """A preview of `flow` (or of an unsaved mapping for it) on a message or a sample."""
    return PreviewRequest(
        source_format=flow.source_format, mapping=flow.mapping if mapping is None else mapping,
        lookups=flow.lookups if lookups is None else lookups, on_error=on_error or flow.on_error,
        data=_payload(message, sample, flow.source_format), message=message, limit=limit, owner_id=flow.owner_id,
    )


def request_for_format(source_format: Format, mapping: dict, *, sample: str | None = None,
                       message: Message | None = None, lookups: dict | None = None, on_error: str | None = None,
                       limit: int = DEFAULT_LIMIT, user_id: int | None = None) -> PreviewRequest:
    """A preview of a mapping not saved in any flow yet; database lookups read as `user_id`."""
    return PreviewRequest(source_format, mapping, lookups or {}, on_error or Flow.OnError.REJECT_RECORD,
                          _payload(message, sample, source_format), message, limit, user_id)


def _payload(message: Message | None, sample: str | None, source_format: Format) -> bytes:
    if message is not None:
        return message.read_body()
    if sample is not None:
        return sample.encode("utf-8")
    if source_format.sample:
        return source_format.sample.encode("utf-8")
    raise PreviewRefused(400, "sample", "give a message id or a sample (the format has no sample of its own)")


def preview_mapping(request: PreviewRequest) -> dict:
    """`{"records", "rejected", "errors", "inputs", "records_in", "filtered"}` for the first records."""
    try:
        compiled = compile_mapping(request.mapping, request.lookups)
    except MappingError as exc:
        raise PreviewRefused(400, exc.field, exc.reason) from None
    meta = message_metadata(request.message) if request.message is not None else {}
    limit = max(1, min(int(request.limit or DEFAULT_LIMIT), MAX_LIMIT))
    try:
        with run_lookups(request.lookups, request.owner_id):
            result = map_records(compiled, request.source_format, request.data, request.on_error, meta, preview_limit=limit)
    except RunFailure as exc:
        raise PreviewRefused(422, "lookups" if "lookup" in exc.reason else "sample", exc.reason) from None
    return {
        "records": result.records, "rejected": result.rejected, "errors": result.errors, "inputs": result.inputs,
        "records_in": result.records_in, "filtered": result.filtered, "targets": result.targets,
    }
