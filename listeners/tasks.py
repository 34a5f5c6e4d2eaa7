"""Celery tasks of listeners: the periodic sweeper."""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="listeners.purge_old_messages", ignore_result=True)
def purge_old_messages_task() -> int:
    return services.purge_old_messages()


@shared_task(name="listeners.sweep_queued_messages", ignore_result=True)
def sweep_queued_messages_task() -> int:
    return services.sweep_queued_messages()
