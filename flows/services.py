"""Running flows on messages: claim, run, record. The one owner of run and message transitions."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, close_old_connections, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.transports import TransportError
from events.services import emit_run_finished, run_finished_is_heard, run_transaction, wants_output
from lib.dbwrites import (
    durable_transaction,
    execute_insert,
    execute_insert_after,
    execute_statements,
    execute_together,
    insert_statement,
    mark_saved,
    one_statement,
    update_statement,
)
from lib.groupcommit import GroupCommit
from listeners.dispatch import PUBLISH_BATCH, publish_many
from listeners.dispatcher import due_statement
from listeners.models import Listener, Message

from .engine import RunFailure, RunResult, execute
from .leases import leases
from .models import Flow, FlowRun
from .progress import RunProgress

log = logging.getLogger(__name__)
MAX_RETRY_DELAY = 300
# Messages a task takes at a time when it goes on with messages nobody was told of yet (`run_messages`).
TAKE_MORE_BATCH = 5
TIMED_BATCH = 1000


def _claim_fields(now) -> dict:
    return {"status": Message.Status.RUNNING, "claimed_at": now, "attempts": F("attempts") + 1}


def _due(now):
    return Q(status=Message.Status.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))


def claim_message(message_id) -> bool:
    """Take a queued message for this worker. False if another delivery already took it, or
    if its flow's ordering or concurrency cap says it must wait (it is then published again
    when the message ahead of it finishes)."""
    return _claimed(message_id) is not None


def _claimed(message_id) -> Message | None:
    """`claim_message`, giving the claimed row (or None)."""
    now = timezone.now()
    # Most flows neither order nor cap their runs: for them one statement claims and reads the row.
    for message in Message.objects.raw(*_claim_statement([message_id], now)):
        return message
    due = Message.objects.filter(_due(now), pk=message_id)
    flow = (Flow.objects.filter(messages__pk=message_id).exclude(ordering="none", concurrency=0)
            .only("pk", "ordering", "concurrency").first())
    if flow is None:
        return None  # claimed by another delivery, or not due
    with transaction.atomic():
        # One claim at a time per flow (a row lock on PostgreSQL; SQLite writes one at a time anyway).
        Flow.objects.select_for_update().filter(pk=flow.pk).values_list("pk", flat=True).first()
        mine = due.values("received_at").first()
        if mine is None:
            return None
        others = Message.objects.filter(flow_id=flow.pk).exclude(pk=message_id)
        running = others.filter(status=Message.Status.RUNNING).count()
        if flow.ordering != "none":
            ahead = others.filter(received_at__lt=mine["received_at"])
            blocking = Q(status=Message.Status.QUEUED)
            if flow.ordering == "fifo":
                blocking |= Q(status=Message.Status.FAILED)  # held until resubmitted or cancelled
            else:
                blocking &= Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)  # one waiting to retry is skipped
            if running or ahead.filter(blocking).exists():
                return None
        if flow.concurrency and running >= flow.concurrency:
            return None
        if due.update(**_claim_fields(now)) != 1:
            return None
    return Message.objects.get(pk=message_id)


def wake_next_of(flow_id: int) -> None:
    flow = Flow.objects.filter(pk=flow_id).only("pk", "ordering", "concurrency").first()
    if flow is not None:
        _wake_next(flow)


def _wake_next(flow: Flow) -> None:
    """After a run of an ordered or capped flow, publish what waits behind it."""
    if flow.ordering == "none" and not flow.concurrency:
        return
    now = timezone.now()
    waiting = (Message.objects.filter(flow_id=flow.pk, status=Message.Status.QUEUED)
               .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
               .order_by("received_at").values_list("pk", flat=True)[: max(1, flow.concurrency)])
    ids = [str(pk) for pk in waiting]
    if ids:
        transaction.on_commit(lambda: publish_many(ids))


def _flows_for(messages) -> dict:
    """The flows of `messages` with what a run needs, by primary key, in one query."""
    ids = {m.flow_id for m in messages if m.flow_id is not None}
    if not ids:
        return {}
    # Unordered: resolving the models' default ordering over four tables' columns was a third of this query's cost.
    return {flow.pk: flow for flow in Flow.objects.select_related(
        "source_format", "destination_format", "destination_connection").filter(pk__in=ids).order_by()}


def _flow_for(message: Message) -> Flow | None:
    return _flows_for([message]).get(message.flow_id)


def start_run(flow: Flow, message: Message | None, trigger: str = "event", after: tuple = ()) -> FlowRun:
    """A running run with nothing read yet; the engine's RunProgress fills in the counts as it goes.
    `after`: prebuilt statements (the previous run's end) committed together with the run's row."""
    run = FlowRun(flow=flow, message=message, trigger=trigger, attempt=message.attempts if message else 1)
    # The SQL built directly: the ORM's compiling cost more than the insert.
    execute_insert_after(run, insert_statement(run), after)
    return run


class CarriedEnd:
    """The end of a task's latest run (its run's and its message's UPDATEs), not yet recorded: it
    goes with the next run's start, committed together (on PostgreSQL one statement), or by itself
    when no run follows. Each run in the worker took two commits, its start and its end; a task of
    n runs now commits n+1 times, its claim included (WAL syncs per run 2.1 -> 1.1)."""

    __slots__ = ("statements",)

    def __init__(self) -> None:
        self.statements: tuple = ()

    def take(self) -> tuple:
        statements, self.statements = self.statements, ()
        return statements

    def record(self) -> None:
        """Commit the carried end now (nothing if none is carried)."""
        statements = self.take()
        if statements:
            execute_together(*statements)


def finish_run(run: FlowRun, result: RunResult | None, failure: RunFailure | None) -> None:
    execute_statements(_run_end(run, result, failure))
    # Subscribers and pull queues hear of it when this transaction commits (one cached look when there are none).
    emit_run_finished(run, result if failure is None else None)


def _run_end(run: FlowRun, result: RunResult | None, failure: RunFailure | None) -> tuple[str, list]:
    """The UPDATE recording the run's end (set on the instance too)."""
    fields = end_run(run, result, failure)
    return update_statement(FlowRun, run.pk, {name: getattr(run, name) for name in fields})


def end_run(run: FlowRun, result: RunResult | None, failure: RunFailure | None) -> list[str]:
    """Set the run's end (status, counts, log, error) on the instance; the names of the fields it set.
    A failed run keeps the counts and bytes its last progress save wrote."""
    run.finished_at = timezone.now()
    ending = ["status", "finished_at", "log", "error"]
    if failure is None:
        run.status = FlowRun.Status.SUCCEEDED
        run.records_in, run.records_out = result.records_in, result.records_out
        run.records_rejected = len(result.rejected)
        run.bytes_read = run.message.size if run.message_id else 0
        run.log = result.log
        ending += ["records_in", "records_out", "records_rejected", "bytes_read"]
    else:
        run.status = FlowRun.Status.FAILED
        run.error = failure.reason
        run.log = [*(result.log if result else []), f"failed: {failure.reason}"]
    return ending


def message_metadata(message: Message) -> dict:
    """What mapping expressions see as `$message`."""
    return {
        "id": str(message.pk), "received_at": message.received_at.isoformat() if message.received_at else None,
        "listener": message.listener_id, "headers": message.headers or {}, "charset": message.charset or "",
    }


def _execute_run(flow: Flow, message: Message, keep_output: bool = True,
                 after: tuple = ()) -> tuple[FlowRun, RunResult | None, RunFailure | None]:
    """Start a run row (committed with `after`, see `start_run`) and execute the flow on the
    message's body; the caller records the end. `keep_output`: the caller answers with the
    output (sync); an async run drops it once delivered."""
    run = start_run(flow, message, after=after)
    return (run, *_execute(flow, message, run, keep_output))


def _execute(flow: Flow, message: Message, run: FlowRun, keep_output: bool) -> tuple[RunResult | None, RunFailure | None]:
    try:
        with message.open_body() as body:  # a large body streams from its file
            return execute(flow, body, message_id=str(message.pk), run_id=run.pk,
                           message_meta=message_metadata(message), keep_output=keep_output,
                           progress=RunProgress(run.pk, body)), None
    except RunFailure as exc:
        return None, exc
    except Exception as exc:  # a bug in the engine must still end the run, not leave it running
        log.exception("flow %s crashed on message %s", flow.pk, message.pk)
        return None, RunFailure(f"internal error: {exc.__class__.__name__}", bad_data=False)


def run_message(message_id) -> FlowRun | None:
    """Run a queued message's flow once. Harmless on a duplicate delivery."""
    message = _claimed(message_id)
    if message is None:
        return None
    with leases.held(message.pk):
        return _run_claimed(message, _flow_for(message))


def run_messages(message_ids: list, take_more: float = 0.0) -> int:
    """Run a task's messages one after another; how many ran.

    The messages of flows that neither order nor cap their runs (most) are claimed
    together, with their rows and flows read in one query each, instead of three
    statements per message; their claims are kept alive until each has run. A run's end
    is committed together with the next run's start (`CarriedEnd`), at the moment both
    happen, so a worker killed mid-task runs again only the message it was running
    (recording a task's ends together at its end was measured and dropped: a worker
    killed mid-task then ran every unrecorded message a second time). The rest (ordered
    or capped flows, a duplicate delivery) go through `run_message`.

    `take_more`: for up to that many seconds after its own messages, the task goes on with
    messages committed meanwhile that no worker was told of yet (`take_undispatched`), a
    few at a time, while it finds any: a busy worker process takes the next message
    itself the moment it is free, without a broker round trip, and the dispatcher leaves
    new messages to it while every process is busy (listeners/dispatcher.py)."""
    if not message_ids:
        return 0
    now = timezone.now()
    mine = {str(m.pk): m for m in Message.objects.raw(*_claim_statement(message_ids, now))}
    ran = _run_batch(message_ids, mine, now)
    deadline = time.monotonic() + take_more
    while time.monotonic() < deadline:
        now = timezone.now()
        taken = take_undispatched(TAKE_MORE_BATCH, now)
        if not taken:
            break
        ran += _run_batch(list(taken), taken, now)
    return ran


def take_undispatched(limit: int, now) -> dict:
    """Up to `limit` due messages no worker was told of yet (oldest first), of flows that neither
    order nor cap their runs, claimed for this process in one statement: {id: message}."""
    return {str(m.pk): m for m in Message.objects.raw(*_take_statement(limit, now))}


def _run_batch(message_ids: list, mine: dict, claimed_at) -> int:
    """Run `message_ids`, those in `mine` already claimed (at `claimed_at`); how many ran."""
    flows = _flows_for(mine.values())
    ran = 0
    carried = CarriedEnd()
    try:
        with leases.held(*(m.pk for m in mine.values())):
            for message_id in message_ids:
                message = mine.pop(str(message_id), None)
                if message is not None:
                    ran += _run_claimed(message, flows.get(message.flow_id), carried) is not None
                else:
                    carried.record()
                    ran += run_message(message_id) is not None
            carried.record()
    finally:
        if carried.statements:  # a run broke off the task: the run before it still ends as it did
            _record_before_leaving(carried)
        if mine:  # a run broke off the task: the claims not yet run go back, untried, for another delivery
            _hand_back(list(mine), claimed_at)
    return ran


def _record_before_leaving(carried: CarriedEnd) -> None:
    try:
        carried.record()
    except DatabaseError as exc:  # the store is away: the run's lease lapses and the sweeper queues it again
        log.warning("could not record the end of a run: %s", exc.__class__.__name__)


def _claim_statement(message_ids: list, now) -> tuple[str, list]:
    """(sql, params) claiming those of `message_ids` that are due (`_due`) and have no flow or one that
    neither orders nor caps its runs, and returning the claimed rows: one statement where the ORM took
    an UPDATE and a SELECT, each compiled anew (at low load, with a message or two per task, most of
    the time between its claim and its run's start)."""
    db = connections[DEFAULT_DB_ALIAS]
    meta = Message._meta
    pks = [meta.pk.get_db_prep_value(pk, db) for pk in message_ids]
    return _claiming(f"{db.ops.quote_name(meta.pk.column)} IN ({', '.join(['%s'] * len(message_ids))})",
                     pks, now, set_enqueued=False)


def _take_statement(limit: int, now) -> tuple[str, list]:
    """(sql, params) claiming up to `limit` due messages of plain flows nobody was told of yet (the
    dispatcher's `due_statement`), oldest first, as `_claim_statement` does, marking them enqueued
    too. On PostgreSQL rows another worker is claiming are skipped, not waited for."""
    db = connections[DEFAULT_DB_ALIAS]
    pk = db.ops.quote_name(Message._meta.pk.column)
    skip_locked = db.features.has_select_for_update_skip_locked
    picked, params = due_statement(limit, now, lock=skip_locked, flows="plain")
    # ARRAY(...) runs the pick once; PostgreSQL may run an IN (...) subquery again per row, each
    # time skipping other rows, so an UPDATE ... IN could claim more than `limit`.
    rows = f"{pk} = ANY(ARRAY({picked}))" if skip_locked else f"{pk} IN ({picked})"
    return _claiming(rows, params, now, set_enqueued=True)


def _column(model, name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.get_field(name).column)


def plain_flow_sql(plain: bool = True) -> str:
    """SQL on messages, with two parameters ("none", 0): the message has no flow, or one that neither
    orders nor caps its runs; or (not `plain`) its flow does one of them."""
    quote, flow_meta = connections[DEFAULT_DB_ALIAS].ops.quote_name, Flow._meta
    flow = _column(Message, "flow")
    plain_flows = (f"SELECT {quote(flow_meta.pk.column)} FROM {quote(flow_meta.db_table)} "
                   f"WHERE {_column(Flow, 'ordering')} = %s AND {_column(Flow, 'concurrency')} = %s")
    if plain:
        return f"({flow} IS NULL OR {flow} IN ({plain_flows}))"
    return f"({flow} IS NOT NULL AND {flow} NOT IN ({plain_flows}))"


def _claiming(rows: str, row_params: list, now, set_enqueued: bool) -> tuple[str, list]:
    """(sql, params) setting the due, queued messages that `rows` (SQL, with `row_params`) picks and
    whose flow is plain (`plain_flow_sql`) running for this process, returning them."""
    db = connections[DEFAULT_DB_ALIAS]
    quote, meta = db.ops.quote_name, Message._meta
    status, attempts, claimed_at = _column(Message, "status"), _column(Message, "attempts"), _column(Message, "claimed_at")
    next_attempt_at = _column(Message, "next_attempt_at")
    returned = ", ".join(quote(f.column) for f in meta.concrete_fields)
    moment = db.ops.adapt_datetimefield_value(now)
    enqueued = f", {_column(Message, 'enqueued_at')} = %s" if set_enqueued else ""
    sql = (f"UPDATE {quote(meta.db_table)} SET {status} = %s, {claimed_at} = %s, {attempts} = {attempts} + 1{enqueued} "
           f"WHERE {rows} AND {status} = %s AND ({next_attempt_at} IS NULL OR {next_attempt_at} <= %s) "
           f"AND {plain_flow_sql()} RETURNING {returned}")
    return sql, [Message.Status.RUNNING, moment, *([moment] if set_enqueued else []), *row_params,
                 Message.Status.QUEUED, moment, "none", 0]


def _hand_back(message_ids: list, claimed_at) -> None:
    try:
        Message.objects.filter(pk__in=message_ids, status=Message.Status.RUNNING, claimed_at=claimed_at).update(
            status=Message.Status.QUEUED, enqueued_at=None, attempts=F("attempts") - 1)
    except DatabaseError as exc:  # the store is away: their leases lapse and the sweeper queues them
        log.warning("could not hand back %d claimed messages: %s", len(message_ids), exc.__class__.__name__)


def _run_claimed(message: Message, flow: Flow | None, carried: CarriedEnd | None = None) -> FlowRun | None:
    """Run the flow of a message this process has claimed, and record the end. With `carried`,
    the run's start commits the end carried there, and an end with nothing beside its two
    rows is left there, for the next run's start (or the caller) to commit."""
    if flow is None or not flow.enabled:
        if carried is not None:
            carried.record()
        Message.objects.filter(pk=message.pk).update(
            status=Message.Status.FAILED, finished_at=timezone.now(),
            error="no enabled flow for this listener when the message ran",
        )
        return None
    # An async run drops its output once delivered, unless subscribers or queues take it.
    run, result, failure = _execute_run(flow, message, keep_output=wants_output(flow.pk),
                                        after=carried.take() if carried is not None else ())
    run_end = _run_end(run, result, failure)
    if _ends_alone(flow, run, result, failure):
        # Most runs: nothing to record beside the two rows' ends, and nothing waits behind them.
        ends = (run_end, _message_end(message, failure, flow))
        if carried is not None:
            carried.statements = ends
        else:
            execute_together(*ends)
        return run
    with run_transaction():  # an output kept for subscribers is moved into place only if this commits
        execute_statements(run_end)
        # Subscribers and pull queues hear of it when this transaction commits.
        emit_run_finished(run, result if failure is None else None)
        _finish_message(message, failure, flow)
        _wake_next(flow)
    return run


def _ends_alone(flow: Flow, run: FlowRun, result: RunResult | None, failure: RunFailure | None) -> bool:
    """Whether a run's end is only its two rows' ends: nobody hears of it (no subscriber, no kept
    output) and its flow neither orders nor caps its runs (nothing waits behind it)."""
    return flow.ordering == "none" and not flow.concurrency and not run_finished_is_heard(
        run, result if failure is None else None)


def retry_delay(flow: Flow, attempt: int) -> float | None:
    """Seconds before the next try after `attempt` failed, or None when the flow's policy has
    no try left. Policy (`flow.retry`): `count` tries in all, `backoff` seconds doubled
    after each try, at most `max_delay`."""
    policy = flow.retry or {}
    if attempt >= int(policy.get("count", settings.PUSHFLOW_MAX_ATTEMPTS)):
        return None
    backoff = float(policy.get("backoff", 2.0))
    return min(float(policy.get("max_delay", MAX_RETRY_DELAY)), backoff * 2 ** (attempt - 1))


def _finish_message(message: Message, failure: RunFailure | None, flow: Flow) -> None:
    execute_statements(_message_end(message, failure, flow))


def _message_end(message: Message, failure: RunFailure | None, flow: Flow) -> tuple[str, list]:
    """The UPDATE recording what a run's end means for its message: done, failed, or queued to try again."""
    now = timezone.now()
    delay = retry_delay(flow, message.attempts) if failure is not None and failure.retryable else None
    if failure is None:
        fields = {"status": Message.Status.SUCCEEDED, "finished_at": now, "error": ""}
    elif delay is not None:
        fields = {
            "status": Message.Status.QUEUED, "next_attempt_at": now + timedelta(seconds=delay),
            "enqueued_at": None, "error": f"attempt {message.attempts} failed, retrying in {delay:g} s: {failure.reason}",
        }
    else:
        tries = f" after {message.attempts} tries" if failure.retryable else ""
        fields = {"status": Message.Status.FAILED, "finished_at": now, "error": f"{failure.reason}{tries}"}
    # Only while the claim is still this run's: had the sweeper given the message to another
    # worker (attempts moved on), that worker's run records the end.
    return update_statement(Message, message.pk, fields,
                            only_if={"status": Message.Status.RUNNING, "attempts": message.attempts})


# Sync runs' writes from concurrent requests share transactions (see lib/groupcommit.py).
sync_writes = GroupCommit("pushflow-sync-writer")


def start_sync_run(listener: Listener, flow: Flow, message: Message, data: bytes) -> FlowRun:
    """Store a sync caller's message and its run row in one short transaction, before the flow runs.

    Nobody can see the message before this commits, so it is stored already claimed by
    this request (running, first attempt) instead of stored and then claimed with an
    UPDATE. Like a claimed async message it counts against its flow's concurrency cap and
    holds a FIFO flow's queue while it runs; a worker lost mid-run leaves it to the sweeper.
    The statements are built before the transaction, which only executes them."""
    message.listener = listener
    message.owner_id = listener.owner_id
    message.flow = flow
    message.store_body(data)
    message.status, message.claimed_at, message.attempts = Message.Status.RUNNING, timezone.now(), 1
    run = FlowRun(flow=flow, message=message, trigger="event", attempt=1, bytes_read=message.size)
    store_message, store_run = insert_statement(message), insert_statement(run)
    single = one_statement(store_message, store_run)  # on PostgreSQL: one round trip, committing itself

    def store() -> None:
        if single is not None:
            execute_insert(run, single)
            mark_saved(message)
        else:
            execute_insert(message, store_message)
            execute_insert(run, store_run)

    sync_writes.run(store, group=settings.PUSHFLOW_GROUP_COMMIT, self_committing=single is not None)
    return run


def _finish_sync(flow: Flow, message: Message, run: FlowRun, result: RunResult | None,
                 failure: RunFailure | None) -> None:
    """Record a sync run's end and its message's answer (kept for idempotent replays) in one transaction."""
    fields = end_run(run, result, failure)
    end = {"finished_at": run.finished_at}
    if failure is None:
        end.update(status=Message.Status.SUCCEEDED, response_status=200,
                   response_content_type=result.content_type, response_body=result.output)
    else:
        end.update(status=Message.Status.FAILED, error=failure.reason, response_status=422 if failure.bad_data else 500)
    statements = (update_statement(FlowRun, run.pk, {name: getattr(run, name) for name in fields}),
                  update_statement(Message, message.pk, end))
    single = one_statement(*statements) if _ends_alone(flow, run, result, failure) else None
    if single is not None:  # most sync runs: nothing to record beside the two ends, nothing waits behind them
        sync_writes.run(lambda: execute_statements(single), group=settings.PUSHFLOW_GROUP_COMMIT, self_committing=True)
    else:
        sync_writes.run(_record_sync_end(flow, run, result, failure, statements), group=settings.PUSHFLOW_GROUP_COMMIT)
    for name, value in end.items():
        setattr(message, name, value)


def _record_sync_end(flow: Flow, run: FlowRun, result: RunResult | None, failure: RunFailure | None,
                     statements: tuple) -> Callable[[], None]:
    def record() -> None:
        # A kept output file is moved into place on commit, deleted if this fails. The group writer's
        # transaction holds this one, and a failing batch is rolled back whole and run job by job.
        with run_transaction(savepoint=False):
            execute_statements(*statements)
            # Inside the transaction, as finish_run does: deliveries and kept outputs commit with the run.
            emit_run_finished(run, result if failure is None else None)
            _wake_next(flow)  # an ordered or capped flow: what waited behind this run may go now

    return record


_sync_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sync-flow")


def _run_sync_in_thread(flow: Flow, message: Message, run: FlowRun) -> tuple[RunResult | None, RunFailure | None]:
    # Pool threads live long: keep each one's connection between runs (CONN_MAX_AGE), drop broken ones.
    close_old_connections()
    try:
        with leases.held(message.pk):
            result, failure = _execute(flow, message, run, keep_output=True)
            _finish_sync(flow, message, run, result, failure)
        return result, failure
    finally:
        close_old_connections()


def run_sync(flow: Flow, message: Message, run: FlowRun, timeout: float) -> tuple[RunResult | None, RunFailure | None]:
    """Run `flow` inline for a sync caller on a message stored by `start_sync_run` with its `run`,
    bounded by `timeout` seconds. The rows in hand are used as they are, not read again.

    Past the timeout the caller gets a RunFailure marked `timed_out`; the run goes
    on and is recorded when it ends.
    """
    future = _sync_pool.submit(_run_sync_in_thread, flow, message, run)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        return None, RunFailure(f"the flow did not finish within {timeout:g} s", bad_data=False, timed_out=True)


class TimedRunRefused(Exception):
    pass


def run_timed_flow(flow_id: int, trigger: str = "cron") -> dict:
    """A timed (or manual) run: queue what the flow's listener accumulated, and read its source
    connection, each payload kept as a message (so it is audited and retried like any other)
    before the source lets go of it. Returns the counts."""
    flow = Flow.objects.select_related("source_connection", "listener").filter(pk=flow_id).first()
    if flow is None:
        raise TimedRunRefused("no such flow")
    if not flow.enabled and trigger != "manual":
        return {"queued": 0, "read": 0}
    now = timezone.now()
    waiting = list(Message.objects.filter(flow=flow, status=Message.Status.RECEIVED).order_by("received_at")
                   .values_list("pk", flat=True)[:TIMED_BATCH])
    queued = Message.objects.filter(pk__in=waiting, status=Message.Status.RECEIVED).update(
        status=Message.Status.QUEUED, enqueued_at=now)
    ids = [str(pk) for pk in waiting]
    read = 0
    connection = flow.source_connection
    if connection is not None:
        try:
            source = {**(flow.source_options or {}), "_state": flow.source_state or {}}
            for item in connection.transport.read(connection.options or {}, connection.secrets, source):
                message = Message(flow=flow, owner_id=flow.owner_id, method="READ", path=item.name[:300],
                                  content_type=item.content_type[:200], status=Message.Status.QUEUED, enqueued_at=now)
                message.store_body(item.data)
                with durable_transaction():  # on disk before the source forgets it, even in the worker
                    message.save(force_insert=True)
                item.done()  # only now may the source forget it
                if item.state is not None:
                    Flow.objects.filter(pk=flow.pk).update(source_state=item.state)
                ids.append(str(message.pk))
                read += 1
        except TransportError as exc:
            log.warning("timed flow %s could not read %s: %s", flow.pk, connection.name, exc.reason)
            # Recorded by the one runner, so subscribers hear `run.failed` like for any other failed run.
            with transaction.atomic():
                finish_run(start_run(flow, None, trigger),
                           None, RunFailure(f"reading {connection.name!r} failed: {exc.reason}", bad_data=False))
    for start in range(0, len(ids), PUBLISH_BATCH):
        batch = ids[start:start + PUBLISH_BATCH]
        transaction.on_commit(lambda batch=batch: publish_many(batch))
    return {"queued": queued, "read": read}
