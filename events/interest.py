"""Which flows anybody listens to, cached per process, so a run nobody subscribed to costs nothing.

The runner asks `wanted(flow_id)` on every finished run and `wants_rejections()` on
every rejected request. The answer comes from one small snapshot (two queries) kept for
PUSHFLOW_EVENTS_CACHE_SECONDS; a subscription or queue saved in this process clears it
at once (signals), another process sees the change within that time.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models.signals import m2m_changed, post_delete, post_save

ANY = 0  # stands for "every flow" in a snapshot's sets of flow ids


@dataclass(frozen=True)
class Snapshot:
    """Event type -> flow ids some enabled subscription may want (ANY: all); flows some queue takes."""

    events: dict[str, frozenset[int]] = field(default_factory=dict)
    queue_flows: frozenset[int] = frozenset()

    def wants(self, event: str, flow_id: int | None) -> bool:
        flows = self.events.get(event)
        return bool(flows) and (ANY in flows or flow_id in flows)


_lock = threading.Lock()
_cached: tuple[float, Snapshot] | None = None


def _load() -> Snapshot:
    from .models import Queue, Subscription

    events: dict[str, set[int]] = {}
    rows = Subscription.objects.filter(enabled=True).values_list("pk", "events")
    subscriptions = {pk: kinds for pk, kinds in rows}
    flows_of: dict[int, set[int]] = {}
    if subscriptions:
        for pk, flow_id in Subscription.flows.through.objects.filter(
                subscription_id__in=list(subscriptions)).values_list("subscription_id", "flow_id"):
            flows_of.setdefault(pk, set()).add(flow_id)
    for pk, kinds in subscriptions.items():
        for kind in kinds or ():
            events.setdefault(kind, set()).update(flows_of.get(pk) or {ANY})
    queue_flows = frozenset(Queue.flows.through.objects.values_list("flow_id", flat=True))
    return Snapshot({k: frozenset(v) for k, v in events.items()}, queue_flows)


def snapshot() -> Snapshot:
    global _cached
    ttl = settings.PUSHFLOW_EVENTS_CACHE_SECONDS
    now = time.monotonic()
    hit = _cached
    if ttl > 0 and hit is not None and hit[0] > now:
        return hit[1]
    fresh = _load()
    with _lock:
        _cached = (now + ttl, fresh)
    return fresh


def clear(*args, **kwargs) -> None:
    global _cached
    with _lock:
        _cached = None


def connect_signals() -> None:
    from .models import Queue, Subscription

    for model in (Subscription, Queue):
        post_save.connect(clear, sender=model, dispatch_uid=f"events-interest-save-{model.__name__}")
        post_delete.connect(clear, sender=model, dispatch_uid=f"events-interest-delete-{model.__name__}")
        m2m_changed.connect(clear, sender=model.flows.through, dispatch_uid=f"events-interest-flows-{model.__name__}")
