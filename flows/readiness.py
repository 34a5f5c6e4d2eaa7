"""What a flow still lacks before it can be enabled: a source, a mapping that compiles, a
destination format, and destination options its connection accepts. The flow designer
flags these and enabling is refused while any remains."""
from __future__ import annotations

from lib.registry import options_errors

from .mapping import MappingError, compile_mapping
from .models import Flow


def missing_steps(flow: Flow) -> list[str]:
    """Plain sentences, one per missing piece; empty when the flow can run."""
    missing = []
    timed = flow.trigger in (Flow.Trigger.CRON, Flow.Trigger.INTERVAL)
    if flow.listener_id is None and flow.source_connection_id is None:
        missing.append("a source: a listener, or a source connection with a timed trigger")
    elif flow.listener_id is None and not timed and flow.trigger != Flow.Trigger.MANUAL:
        missing.append("a listener (an event trigger runs when a payload arrives at one)")
    if timed and not flow.schedule:
        missing.append("a schedule for the timed trigger")
    if not (flow.mapping or {}).get("fields"):
        missing.append("a mapping with at least one field")
    else:
        try:
            compile_mapping(flow.mapping, flow.lookups or {})
        except MappingError as exc:
            missing.append(f"a mapping that compiles ({exc.field}: {exc.reason})")
    if flow.destination_format_id is None:
        missing.append("a destination format")
    if flow.destination_connection_id is None:
        sync = flow.listener_id is not None and flow.listener.mode == "sync"
        if not sync:
            missing.append("a destination connection (only a sync listener's flow may answer its caller instead)")
    else:
        problems = options_errors(flow.destination_connection.transport.destination_options_schema,
                                  flow.destination_options or {})
        if problems:
            missing.append("destination options its connection accepts: " + "; ".join(problems))
    return missing
