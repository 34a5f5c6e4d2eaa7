"""Accepting messages and getting them to a worker: store, enqueue on commit, sweep.

The database is where messages live. A message is committed before the caller
gets a 2xx; publishing to the broker happens after commit and may fail (broker
down) without losing anything: the sweeper publishes every message still queued.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from events.services import emit_message_rejected

from .dispatch import publish, publish_many, publish_soon
from .models import Listener, Message
from .writer import store_message

log = logging.getLogger(__name__)


def fill_accepted(listener: Listener, message: Message, data: bytes, queue: bool) -> None:
    """`message` made ready to store as accepted: its listener, owner, flow and body, and queued
    for a worker if `queue` and its flow runs on arrival. Nothing is written."""
    message.listener = listener
    message.owner_id = listener.owner_id
    flow = getattr(listener, "flow", None)
    message.flow = flow
    message.store_body(data)
    if queue and flow is not None and flow.enabled and flow.runs_on_arrival:
        # Queued and not yet enqueued: a worker's dispatcher publishes it (see dispatcher.py).
        message.status = Message.Status.QUEUED


def accept_message(listener: Listener, message: Message, data: bytes, queue: bool) -> Message:
    """Store an accepted request (body included) and, if `queue`, publish it after commit."""
    fill_accepted(listener, message, data, queue)
    # Committed when this returns (grouped with concurrent requests' rows, see writer.py).
    store_message(message, group=settings.PUSHFLOW_GROUP_COMMIT)
    if message.status == Message.Status.QUEUED and settings.CELERY_TASK_ALWAYS_EAGER:
        transaction.on_commit(lambda: publish(message.pk))  # no worker: run it in this process
    return message


def first_with_key(listener: Listener, key: str) -> Message | None:
    """The message a listener already accepted under this idempotency key, if any."""
    if not key:
        return None
    return Message.objects.filter(listener=listener, idempotency_key=key).defer("body", "body_text").first()


def first_with_same_body(listener: Listener, data: bytes) -> Message | None:
    """With the listener's dedupe window on, the message it accepted with these exact bytes
    within the window, if any. (Two identical requests at the very same moment may both be
    kept: the window is a check, not a lock; an Idempotency-Key is exact.)"""
    if not listener.dedupe_window_seconds:
        return None
    since = timezone.now() - timedelta(seconds=listener.dedupe_window_seconds)
    digest = hashlib.sha256(data).hexdigest()
    return (Message.objects.filter(listener=listener, sha256=digest, received_at__gte=since)
            .exclude(status=Message.Status.REJECTED).order_by("received_at").defer("body", "body_text").first())


def record_rejection(listener: Listener | None, message: Message, status: int, reason: str, data: bytes = b"") -> None:
    """Keep a rejected request (its reason, and its body when one was read) for the messages page."""
    message.listener = listener
    message.owner_id = listener.owner_id if listener else None
    message.idempotency_key = ""  # a refused request does not claim its key; the header stays in `headers`
    message.status = Message.Status.REJECTED
    message.response_status = status
    message.error = reason
    message.finished_at = timezone.now()
    if data:
        message.store_body(data)
    try:
        message.save(force_insert=True)
        emit_message_rejected(listener, message)
    except Exception as exc:  # keeping a reject must never turn the answer into a 500
        log.warning("could not record a rejected request: %s", exc.__class__.__name__)


def requeue_due_messages(limit: int = 500) -> list:
    """Ids of messages that should be (re)published now; marks them enqueued.

    A message is due when it is queued, its retry time (if any) has come, and it
    was never published or was published long enough ago that the broker must
    have lost it. A message claimed by a worker that never finished (its lease
    ran out) goes back to queued, or fails once it has used all its attempts.
    """
    now = timezone.now()
    lease = now - timedelta(seconds=settings.PUSHFLOW_RUN_LEASE_SECONDS)
    stale = Message.objects.filter(status=Message.Status.RUNNING, claimed_at__lt=lease)
    stale.filter(attempts__gte=settings.PUSHFLOW_MAX_ATTEMPTS).update(
        status=Message.Status.FAILED, finished_at=now,
        error="the worker running this message was lost too many times; stopped after the last attempt",
    )
    stale.update(status=Message.Status.QUEUED, enqueued_at=None, error="the worker running this message was lost; queued again")
    forgotten = now - timedelta(seconds=settings.PUSHFLOW_REQUEUE_AFTER_SECONDS)
    due = (
        Message.objects.filter(status=Message.Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=forgotten))
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    ids = list(due)
    if ids:
        Message.objects.filter(pk__in=ids, status=Message.Status.QUEUED).update(enqueued_at=now)
    return ids


def sweep_queued_messages() -> int:
    """Publish every queued message that is due; returns how many were published."""
    from .dispatcher import DISPATCH_BATCH

    published = 0
    ids = [str(pk) for pk in requeue_due_messages()]
    for start in range(0, len(ids), DISPATCH_BATCH):
        batch = ids[start:start + DISPATCH_BATCH]
        if not publish_many(batch):
            break  # broker down: the rest is due again after the requeue window
        published += len(batch)
    return published


class ResubmitRefused(Exception):
    pass


def resubmit_message(message: Message) -> None:
    """Run the flow again on the same message, as a new run."""
    if message.status in (Message.Status.QUEUED, Message.Status.RUNNING):
        raise ResubmitRefused(f"the message is {message.status}; wait for it to finish")
    if message.status == Message.Status.REJECTED:
        raise ResubmitRefused("a rejected request was not accepted and has no run to repeat")
    listener = message.listener
    flow = getattr(listener, "flow", None) if listener else message.flow  # read by a timed flow: no listener
    if flow is None or not flow.enabled:
        raise ResubmitRefused("the message's listener has no enabled flow")
    with transaction.atomic():
        updated = Message.objects.filter(pk=message.pk, status=message.status).update(
            status=Message.Status.QUEUED, flow=flow, enqueued_at=timezone.now(), next_attempt_at=None,
            finished_at=None, error="",
        )
        if not updated:
            raise ResubmitRefused("the message changed meanwhile; reload and try again")
        transaction.on_commit(lambda: publish_soon(message.pk))


def cancel_message(message: Message, user) -> None:
    """Stop a message that has not run yet (received, queued or waiting for a retry)."""
    who = user.get_username() if user is not None else "someone"
    # A failed message can be cancelled too: in a FIFO flow that holds on failure, that lets the queue move on.
    cancellable = (Message.Status.RECEIVED, Message.Status.QUEUED, Message.Status.FAILED)
    updated = Message.objects.filter(pk=message.pk, status__in=cancellable).update(
        status=Message.Status.CANCELLED, finished_at=timezone.now(), next_attempt_at=None,
        error=f"cancelled by {who}",
    )
    if not updated:
        current = Message.objects.filter(pk=message.pk).values_list("status", flat=True).first()
        raise ResubmitRefused(f"the message is {current}; only a received, queued or failed message can be cancelled")
    if message.flow_id:
        from flows.services import wake_next_of

        wake_next_of(message.flow_id)


def edit_and_resubmit(message: Message, data: bytes, user) -> Message:
    """A new message with an edited body, linked to the original, run by the original's flow."""
    if message.status == Message.Status.REJECTED:
        raise ResubmitRefused("a rejected request was not accepted; push it again instead")
    listener = message.listener
    flow = getattr(listener, "flow", None) if listener else message.flow
    if flow is None or not flow.enabled:
        raise ResubmitRefused("the message's listener has no enabled flow")
    copy = Message(
        listener=listener, flow=flow, owner_id=message.owner_id, method=message.method, path=message.path,
        query=message.query, headers={**(message.headers or {}), "X-Pushflow-Edited-By": user.get_username()},
        remote_addr="", user=user, content_type=message.content_type, charset=message.charset,
        resubmitted_from=message,
    )
    copy.store_body(data)
    if flow.runs_on_arrival:
        copy.status, copy.enqueued_at = Message.Status.QUEUED, timezone.now()
    with transaction.atomic():
        copy.save(force_insert=True)
        if copy.status == Message.Status.QUEUED:
            transaction.on_commit(lambda: publish_soon(copy.pk))
    return copy


def resubmit_messages(queryset, limit: int = 10_000) -> dict:
    """Resubmit every message of `queryset` that can be (a bulk action on a filtered list)."""
    done, skipped = 0, []
    for message in queryset.order_by("received_at")[:limit]:
        try:
            resubmit_message(message)
            done += 1
        except ResubmitRefused as exc:
            skipped.append({"id": str(message.pk), "reason": str(exc)})
    return {"resubmitted": done, "skipped": len(skipped), "skipped_examples": skipped[:20]}


def purge_old_messages(batch: int = 1000) -> int:
    """Delete finished messages older than their listener's retention (runs go with them, body
    files are removed); returns how many. Messages still queued or running are never purged."""
    now = timezone.now()
    removed = 0
    rules = [(Q(listener=listener), listener.retention_days)
             for listener in Listener.objects.filter(retention_days__gt=0).only("pk", "retention_days")]
    if settings.PUSHFLOW_RETENTION_DAYS > 0:
        rules.append((Q(listener__isnull=True), settings.PUSHFLOW_RETENTION_DAYS))
    for where, days in rules:
        old = Message.objects.filter(where, status__in=Message.FINAL, received_at__lt=now - timedelta(days=days))
        while True:
            chunk = list(old.values_list("pk", "body_file")[:batch])
            if not chunk:
                break
            with transaction.atomic():
                Message.objects.filter(pk__in=[pk for pk, _ in chunk]).delete()
            for _, body_file in chunk:
                if body_file:
                    (settings.PUSHFLOW_BODY_DIR / body_file).unlink(missing_ok=True)
            removed += len(chunk)
    return removed
