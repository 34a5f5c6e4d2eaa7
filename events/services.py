"""Business events: emit them where runs finish and requests are refused, deliver them to subscribers
with retries, keep outputs as files, and hand them to pollers under leases.

`emit_run_finished` and `emit_message_rejected` are called on every run and every
refusal; when nobody subscribed and no queue takes the flow they cost one look at a
cached snapshot (interest.py). Deliveries are rows; a Celery task takes a delivery id
and calls `attempt_delivery`, and `retry_due_deliveries` (periodic) publishes the ones
whose retry time has come.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.crypto import encrypt_secrets
from connections.transports import TransportError
from connections.transports.http import send

from . import interest
from .models import Delivery, DeliveryAttempt, Output, Queue, QueueItem, Subscription
from .signing import download_url, new_webhook_secret, webhook_headers

log = logging.getLogger(__name__)
RESPONSE_IN_LOG = 300
SENDING_LEASE = timedelta(minutes=10)
REQUEUE_AFTER = timedelta(minutes=2)
PART_SUFFIX = ".part"
# A `.part` output file this old belongs to no transaction still running.
PART_FILE_MAX_AGE = timedelta(hours=1)
_pending_files: ContextVar[list[Path] | None] = ContextVar("pushflow_pending_output_files", default=None)
CONTENT_SUFFIX = {"application/json": "json", "text/csv": "csv", "application/xml": "xml", "text/xml": "xml",
                  "application/x-ndjson": "jsonl", "application/fhir+json": "json", "x-application/hl7-v2+er7": "hl7"}


class DeliveryRefused(Exception):
    pass


class QueueRefused(Exception):
    def __init__(self, reason: str, status: int = 404):
        self.reason, self.status = reason, status
        super().__init__(reason)


# --- emitting ---------------------------------------------------------------------------------------------


def entity_name(flow) -> str:
    """The business entity a flow's output is: its destination's `entity` option, else its table, else its name."""
    options = flow.destination_options or {}
    return str(options.get("entity") or options.get("table") or flow.name)[:200]


def wants_output(flow_id: int) -> bool:
    """Whether a run of this flow must keep its output bytes (an output.ready subscriber or a
    pull queue needs them); one cached look."""
    snap = interest.snapshot()
    return snap.wants("output.ready", flow_id) or flow_id in snap.queue_flows


def _interest_in(run, result) -> tuple[str, bool, bool]:
    """The event a finished run makes, whether a subscriber wants it, whether its output must be kept."""
    flow_id = run.flow_id
    snap = interest.snapshot()
    succeeded = run.status == "succeeded"
    event = "run.succeeded" if succeeded else "run.failed"
    want_output = succeeded and result is not None and (snap.wants("output.ready", flow_id) or flow_id in snap.queue_flows)
    return event, snap.wants(event, flow_id), want_output


def run_finished_is_heard(run, result) -> bool:
    """Whether `emit_run_finished(run, result)` would record anything (a delivery, a kept output); one cached look."""
    _, want_event, want_output = _interest_in(run, result)
    return want_event or want_output


def emit_run_finished(run, result) -> None:
    """A run ended: `run.succeeded` / `run.failed` to subscribers, and (succeeded) its output kept
    for `output.ready` subscribers and queues. Call inside the transaction that records the run."""
    flow = run.flow
    event, want_event, want_output = _interest_in(run, result)
    if not (want_event or want_output):
        return
    message = run.message
    listener_id = message.listener_id if message is not None else flow.listener_id
    data = {
        "flow": flow.pk, "flow_name": flow.name, "listener": listener_id, "message": str(message.pk) if message else None,
        "run": run.pk, "status": run.status, "records_in": run.records_in, "records_out": run.records_out,
        "records_rejected": run.records_rejected, "error": run.error, "entity_name": entity_name(flow),
    }
    ids = []
    if want_event:
        ids += _fan_out(event, flow, listener_id, data)
    if want_output:
        output = keep_output(flow, run, result)
        _enqueue_output(output)
        if interest.snapshot().wants("output.ready", flow.pk):
            output_data = {**data, "output": output.pk, "content_type": output.content_type, "size": output.size}
            ids += _fan_out("output.ready", flow, listener_id, output_data, output)
    _publish_on_commit(ids)


def emit_message_rejected(listener, message) -> None:
    """A request was refused at the door: `message.rejected` to subscribers of its listener's flow."""
    snap = interest.snapshot()
    if not snap.events.get("message.rejected"):
        return
    flow = getattr(listener, "flow", None) if listener is not None else None
    if flow is None or not snap.wants("message.rejected", flow.pk):
        return
    data = {"flow": flow.pk, "flow_name": flow.name, "listener": listener.pk, "message": str(message.pk), "run": None,
            "status": "rejected", "status_code": message.response_status, "reason": message.error,
            "entity_name": entity_name(flow)}
    _publish_on_commit(_fan_out("message.rejected", flow, listener.pk, data))


def _matching_subscriptions(event: str, flow, listener_id: int | None) -> list[Subscription]:
    """Enabled subscriptions to `event` whose filters take this flow, listener and entity, owned by
    someone who may see the flow."""
    from flows.models import Flow

    teams = Flow.teams.through.objects.filter(flow_id=flow.pk).values("group_id")
    may_see = Q(owner_id=flow.owner_id) | Q(owner__is_superuser=True) | Q(owner__groups__in=teams)
    listener = Q(listeners__isnull=True) | Q(listeners=listener_id) if listener_id else Q(listeners__isnull=True)
    candidates = (Subscription.objects.filter(enabled=True).filter(may_see)
                  .filter(Q(flows__isnull=True) | Q(flows=flow.pk)).filter(listener).distinct())
    entity = entity_name(flow)
    return [s for s in candidates if event in (s.events or []) and (not s.entity_names or entity in s.entity_names)]


def _fan_out(event: str, flow, listener_id: int | None, data: dict, output: Output | None = None) -> list[int]:
    now = timezone.now()
    deliveries = [
        Delivery(subscription=subscription, msg_id=f"msg_{uuid.uuid4().hex}", event=event, output=output,
                 payload={"type": event, "timestamp": now.isoformat(), "data": data}, next_attempt_at=now,
                 enqueued_at=now, created_at=now)
        for subscription in _matching_subscriptions(event, flow, listener_id)
    ]
    for delivery in deliveries:
        delivery.save(force_insert=True)
    return [d.pk for d in deliveries]


def _publish_on_commit(delivery_ids: list[int]) -> None:
    if delivery_ids:
        transaction.on_commit(lambda: [publish_delivery(pk) for pk in delivery_ids])


def publish_delivery(delivery_id: int, manual: bool = False) -> bool:
    """Hand a delivery to a worker. False (logged) when the broker is unreachable: the sweeper retries."""
    from .tasks import deliver_task

    try:
        deliver_task.apply_async(args=[delivery_id, manual], retry=False)
    except Exception as exc:  # any broker error: retry_due_deliveries publishes it again
        if settings.CELERY_TASK_ALWAYS_EAGER:
            raise
        log.warning("could not publish delivery %s (%s); the sweeper will retry", delivery_id, exc.__class__.__name__)
        return False
    return True


# --- outputs and queues -----------------------------------------------------------------------------------


@contextmanager
def run_transaction(savepoint: bool = True):
    """`transaction.atomic()` for recording a finished run. An output file kept inside it is written under a
    temporary name and moved into place when the transaction commits; if the block fails and rolls back,
    the file is deleted at once. (A rollback further out, or a crash, leaves a `.part` file that
    `purge_old_outputs` removes once it is PART_FILE_MAX_AGE old.)
    `savepoint=False`: inside a transaction whose caller rolls back all of it on any error (a group
    commit's batch), no SAVEPOINT and RELEASE round trips."""
    pending: list[Path] = []
    token = _pending_files.set(pending)
    try:
        with transaction.atomic(savepoint=savepoint):
            yield
    except BaseException:
        for path in pending:
            path.unlink(missing_ok=True)
        raise
    finally:
        _pending_files.reset(token)


def keep_output(flow, run, result) -> Output:
    """Record a run's output and write its bytes to a file under PUSHFLOW_OUTPUT_DIR: under a temporary
    name now, under its own name when the transaction commits, so a rolled-back run leaves no output."""
    now = timezone.now()
    content_type = (result.content_type or "application/octet-stream")[:200]
    suffix = CONTENT_SUFFIX.get(content_type.split(";")[0].strip().lower(), "bin")
    relative = f"{now:%Y/%m/%d}/{uuid.uuid4().hex}.{suffix}"
    target = settings.PUSHFLOW_OUTPUT_DIR / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + PART_SUFFIX)
    partial.write_bytes(result.output or b"")
    pending = _pending_files.get()
    if pending is not None:
        pending.append(partial)
    output = Output.objects.create(owner_id=flow.owner_id, flow=flow, run=run, message=run.message,
                                   entity_name=entity_name(flow), content_type=content_type,
                                   size=len(result.output or b""), path=relative, created_at=now)
    # Registered before the deliveries' publishing, so the file is in place before anyone is told of it.
    transaction.on_commit(lambda: _move_into_place(partial, target))
    return output


def _move_into_place(partial: Path, target: Path) -> None:
    try:
        partial.replace(target)
    except OSError as exc:  # the run is committed; its output cannot be served, and the download says so
        log.error("could not move the output %s into place: %s", target.name, exc.__class__.__name__)


def purge_part_files(now: float | None = None) -> int:
    """Delete `.part` output files older than PART_FILE_MAX_AGE (left by a rollback or a crash); returns how many."""
    root = Path(settings.PUSHFLOW_OUTPUT_DIR)
    if not root.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - PART_FILE_MAX_AGE.total_seconds()
    removed = 0
    for path in root.rglob("*" + PART_SUFFIX):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # moved into place or removed meanwhile
            continue
    return removed


def _enqueue_output(output: Output) -> None:
    queue_ids = Queue.flows.through.objects.filter(flow_id=output.flow_id).values_list("queue_id", flat=True)
    QueueItem.objects.bulk_create([QueueItem(queue_id=pk, output=output) for pk in queue_ids])


def lease_next(queue: Queue, now=None) -> QueueItem | None:
    """Hand out the queue's oldest available item under a new lease, or None when it is empty.

    An item is available when it was never leased or its lease ran out. The claim is one
    conditional UPDATE (on PostgreSQL the candidates are first locked with SKIP LOCKED), so
    two pollers never hold the same item: the loser of a race tries the next candidate.
    """
    now = now or timezone.now()
    available = QueueItem.objects.filter(queue=queue).filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
    for _ in range(5):
        with transaction.atomic():
            candidates = available.order_by("id")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            ids = list(candidates.values_list("pk", flat=True)[:10])
            if not ids:
                return None
            for pk in ids:
                lease = QueueItem.new_lease_id()
                expires = now + timedelta(seconds=queue.lease_seconds)
                claimed = available.filter(pk=pk).update(lease_id=lease, lease_expires_at=expires, leases=F("leases") + 1)
                if claimed == 1:
                    return QueueItem.objects.select_related("output").get(pk=pk)
    return None


def acknowledge(queue: Queue, lease_id: str) -> None:
    """Remove the item held under this lease. QueueRefused (404) when no item is held under it any more."""
    try:
        lease = uuid.UUID(str(lease_id))
    except ValueError:
        raise QueueRefused("not a lease id (the id answered by next)", 404) from None
    deleted, _ = QueueItem.objects.filter(queue=queue, lease_id=lease).delete()
    if not deleted:
        raise QueueRefused("no item is held under this lease: it was acknowledged already, or it ran out and was "
                           "handed to another poller", 404)


def queue_depths(queues) -> dict[int, dict]:
    """For each queue id: items waiting (`available`) and items out on a lease (`leased`)."""
    now = timezone.now()
    depths = {q.pk: {"available": 0, "leased": 0} for q in queues}
    items = QueueItem.objects.filter(queue_id__in=list(depths))
    for pk in items.filter(lease_expires_at__gt=now).values_list("queue_id", flat=True):
        depths[pk]["leased"] += 1
    for pk in items.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)).values_list("queue_id", flat=True):
        depths[pk]["available"] += 1
    return depths


def purge_old_outputs(batch: int = 1000) -> int:
    """Delete kept outputs older than PUSHFLOW_OUTPUT_RETENTION_DAYS that no queue still holds, and stray
    `.part` files; returns how many outputs."""
    purge_part_files()
    days = settings.PUSHFLOW_OUTPUT_RETENTION_DAYS
    if days <= 0:
        return 0
    old = Output.objects.filter(created_at__lt=timezone.now() - timedelta(days=days), queue_items__isnull=True)
    removed = 0
    while True:
        chunk = list(old.values_list("pk", "path")[:batch])
        if not chunk:
            return removed
        Output.objects.filter(pk__in=[pk for pk, _ in chunk]).delete()
        for _, path in chunk:
            (settings.PUSHFLOW_OUTPUT_DIR / path).unlink(missing_ok=True)
        removed += len(chunk)


# --- delivering -------------------------------------------------------------------------------------------


def delivery_body(delivery: Delivery, request=None) -> bytes:
    """The JSON sent for a delivery; an `output.ready` gets a freshly signed download URL each time."""
    payload = delivery.payload
    if delivery.event == "output.ready" and delivery.output_id:
        url, expires = download_url(delivery.output_id, request)
        expires_at = datetime.fromtimestamp(expires, tz=UTC).isoformat()
        payload = {**payload, "data": {**payload.get("data", {}), "download_url": url, "download_expires_at": expires_at}}
    return orjson.dumps(payload)


def attempt_delivery(delivery_id: int, manual: bool = False) -> DeliveryAttempt | None:
    """Send a due delivery once and log the attempt. None if it was not due or another worker has it."""
    now = timezone.now()
    claimed = Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING, next_attempt_at__lte=now).update(
        status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None:
        return None  # its subscription was deleted meanwhile
    subscription = delivery.subscription
    if not subscription.enabled and not manual:
        Delivery.objects.filter(pk=delivery_id).update(
            status=Delivery.Status.FAILED, finished_at=now, attempts=F("attempts") - 1,
            last_error="not sent: the subscription is disabled")
        return None
    body = delivery_body(delivery)
    headers = {**webhook_headers(subscription.signing_secrets(), delivery.msg_id, body), "User-Agent": "Pushflow-Webhooks/1"}
    options = {"url": subscription.url, "method": "POST", "headers": headers, "retries": 0,
               "timeout": settings.PUSHFLOW_WEBHOOK_TIMEOUT_SECONDS}
    started, clock = timezone.now(), time.monotonic()
    status_code, error = None, ""
    try:
        response = send(options, {}, body, "application/json", {})
        status_code = response.status_code
        if not 200 <= status_code < 300:
            text = response.content[:RESPONSE_IN_LOG].decode("utf-8", "replace")
            error = f"answered {status_code}" + (f": {text}" if text else "")
    except TransportError as exc:
        error = exc.reason
    except httpx.HTTPError as exc:
        error = f"the request failed: {exc.__class__.__name__}"
    duration = int((time.monotonic() - clock) * 1000)
    return _record_attempt(delivery, started, status_code, duration, error, manual)


def _record_attempt(delivery: Delivery, started, status_code, duration: int, error: str, manual: bool) -> DeliveryAttempt:
    succeeded = not error
    now = timezone.now()
    with transaction.atomic():
        attempt = DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, manual=manual, started_at=started,
                                                 status_code=status_code, duration_ms=duration, succeeded=succeeded, error=error)
        fields = {"last_status_code": status_code, "last_error": error, "claimed_at": None}
        schedule = settings.PUSHFLOW_WEBHOOK_RETRY_SECONDS
        if succeeded:
            fields.update(status=Delivery.Status.SUCCEEDED, finished_at=now)
            Subscription.objects.filter(pk=delivery.subscription_id).update(consecutive_failures=0)
        elif delivery.attempts <= len(schedule):  # a failed try by hand keeps the retries that were left
            delay = schedule[delivery.attempts - 1]
            fields.update(status=Delivery.Status.PENDING, next_attempt_at=now + timedelta(seconds=delay), enqueued_at=None)
        else:
            fields.update(status=Delivery.Status.FAILED, finished_at=now)
            if not manual:
                _count_failed_delivery(delivery.subscription_id, error)
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
    return attempt


def _count_failed_delivery(subscription_id: int, error: str) -> None:
    """One more delivery failed every retry; past the limit the subscription is disabled, with the reason."""
    Subscription.objects.filter(pk=subscription_id).update(consecutive_failures=F("consecutive_failures") + 1)
    failures = Subscription.objects.filter(pk=subscription_id).values_list("consecutive_failures", flat=True).first() or 0
    limit = settings.PUSHFLOW_WEBHOOK_DISABLE_AFTER
    if limit and failures >= limit:
        reason = (f"disabled on {timezone.now():%Y-%m-%d %H:%M} UTC: {failures} deliveries in a row failed every retry; "
                  f"the last one: {error[:300]}")
        if Subscription.objects.filter(pk=subscription_id, enabled=True).update(enabled=False, disabled_reason=reason):
            log.warning("subscription %s disabled after %d failed deliveries", subscription_id, failures)
            transaction.on_commit(interest.clear)


def redeliver(delivery: Delivery) -> None:
    """Send a delivery again now, by hand (after it succeeded or failed). Its webhook-id stays the same."""
    if delivery.status == Delivery.Status.SENDING:
        raise DeliveryRefused("the delivery is being sent right now; wait for it to finish")
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.PENDING, next_attempt_at=timezone.now(),
                                                       enqueued_at=timezone.now(), finished_at=None)
        transaction.on_commit(lambda: publish_delivery(delivery.pk, manual=True))


def rotate_secret(subscription: Subscription, now=None, by=None) -> str:
    """Give a subscription a new signing secret and return it (the only time it is seen). For
    PUSHFLOW_WEBHOOK_SECRET_GRACE_SECONDS deliveries are signed with the old secret as well, so the
    receiver can switch without losing one; a second rotation within that time drops the oldest.
    `by`: the user who asked, recorded in the audit log with the change."""
    from accounts.audit import record_change

    now = now or timezone.now()
    grace = settings.PUSHFLOW_WEBHOOK_SECRET_GRACE_SECONDS
    new = new_webhook_secret()
    with transaction.atomic():
        current = Subscription.objects.select_for_update().get(pk=subscription.pk)
        stored = {"secret": new}
        if grace > 0 and current.secret:
            stored["previous"] = current.secret
        expires = now + timedelta(seconds=grace) if "previous" in stored else None
        Subscription.objects.filter(pk=subscription.pk).update(secret_encrypted=encrypt_secrets(stored),
                                                               previous_secret_expires_at=expires, updated_at=now)
        if by is not None:
            record_change(by, "update", subscription, None, None, ["secret"])
    subscription.refresh_from_db()
    return new


def enable_subscription(subscription: Subscription) -> None:
    """Turned on again by its owner: the failure count and the reason it was disabled are cleared."""
    Subscription.objects.filter(pk=subscription.pk).update(enabled=True, disabled_reason="", consecutive_failures=0)
    interest.clear()


def retry_due_deliveries(limit: int = 500) -> int:
    """Publish deliveries whose retry time has come (and take back ones a lost worker held); returns how many."""
    now = timezone.now()
    Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__lt=now - SENDING_LEASE).update(
        status=Delivery.Status.PENDING, next_attempt_at=now, enqueued_at=None, claimed_at=None)
    due = list(Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
               .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - REQUEUE_AFTER))
               .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if due:
        Delivery.objects.filter(pk__in=due).update(enqueued_at=now)
    published = 0
    for pk in due:
        if not publish_delivery(pk):
            break
        published += 1
    return published
