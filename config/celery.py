"""The Celery app. Tasks live in each app's tasks.py and are found by autodiscovery."""
from __future__ import annotations

import os

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

# The embedded broker: a folder transport with atomic writes (see embedded_broker).
TRANSPORT_ALIASES.setdefault("embedded", "config.embedded_broker:Transport")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Tasks between forced reconnects (see _keep_database_connections).
DB_REUSE_MAX_TASKS = 1000

app = Celery("pushflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _keep_database_connections(**kwargs) -> None:
    """Celery's Django fixup closes every database connection before and after each task,
    so each run paid a new PostgreSQL connection (a fifth of a worker's time under load).
    Connections are kept instead, and dropped the Django way: when older than
    CONN_MAX_AGE or left unusable by an error."""
    for fixup in getattr(app, "_fixups", []):
        worker_fixup = getattr(fixup, "worker_fixup", None)
        if worker_fixup is not None:
            worker_fixup.db_reuse_max = DB_REUSE_MAX_TASKS


_task_connection_health = None  # this process's RecentlyHealthy (lib/dbhealth.py), made on first use


def _own_task(task) -> bool:
    # A task run inline by its caller (eager) is inside the caller's request or transaction: its connection is not ours.
    return task is not None and not getattr(task.request, "is_eager", False)


@signals.task_prerun.connect
def _drop_old_connections(task=None, **kwargs) -> None:
    """Before each task: a broken or too old connection is dropped; one that ended a task cleanly a
    moment ago is used without the health check's round trip (at low load, one per message)."""
    global _task_connection_health
    if not _own_task(task):
        return
    if _task_connection_health is None:
        from lib.dbhealth import RecentlyHealthy

        _task_connection_health = RecentlyHealthy()
    _task_connection_health.begin()


@signals.task_postrun.connect
def _note_clean_connection(task=None, **kwargs) -> None:
    if _own_task(task) and _task_connection_health is not None:
        _task_connection_health.end()


@signals.worker_process_init.connect
def _freeze_startup_objects(**kwargs) -> None:
    """The app's import-time objects live as long as the worker process: moved out of the
    garbage collector's view, full collections no longer walk them after every few runs."""
    import gc

    gc.collect()
    gc.freeze()


@signals.worker_init.connect
@signals.worker_process_init.connect
def _relax_commit_durability(**kwargs) -> None:
    """In the worker (its main process, which dispatches, and each pool process), PostgreSQL commits
    do not wait for the log flush: every write there is redone if a crash loses it (see
    lib.dbwrites). A run's two commits waited ~0.5 ms for the disk, a sixth of its time."""
    from django.conf import settings

    if not settings.PUSHFLOW_WORKER_RELAXED_COMMITS:
        return
    from django.db.backends.signals import connection_created

    # New connections only: a pool process must not use one it inherited from its parent (Celery
    # closes those after the fork), and the dispatcher and runs open their own.
    connection_created.connect(_relax_new_connection, dispatch_uid="pushflow-relaxed-commits")


def _relax_new_connection(sender, connection, **kwargs) -> None:
    from lib.dbwrites import relax_commit_durability

    relax_commit_durability(connection)


_dispatchers: list = []


@signals.worker_ready.connect
def _start_dispatcher(sender=None, **kwargs) -> None:
    """A worker that runs ingested messages also hands them to the broker (listeners/dispatcher.py)."""
    queues = getattr(getattr(sender, "app", app).amqp.queues, "consume_from", None) or {}
    if app.conf.task_default_queue in queues and not app.conf.task_always_eager:
        from celery.worker import state

        from listeners.dispatcher import start_dispatcher

        controller = getattr(sender, "controller", None)  # the worker, whose pool runs `concurrency` tasks at once
        processes = int(getattr(controller, "concurrency", 1) or 1)
        # This worker's tasks received and not yet finished (running, or waiting for a free process).
        _dispatchers.append(start_dispatcher(processes, busy=lambda: len(state.reserved_requests) >= processes))


@signals.worker_shutdown.connect
def _stop_dispatcher(**kwargs) -> None:
    while _dispatchers:
        _dispatchers.pop().stop()
