"""Celery tasks of flows: thin wrappers that take ids and call services."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services


def _take_more(task) -> float:
    """Seconds a task goes on with messages nobody was told of yet: none unless a worker runs it
    (called as a function, or eagerly inside its caller's request, it runs its own messages only)."""
    if task.request.called_directly or task.request.is_eager:
        return 0.0
    return settings.PUSHFLOW_WORKER_TAKE_MORE_SECONDS


@shared_task(name="flows.run_message", acks_late=True, bind=True)
def run_message_task(self, message_id: str) -> None:
    services.run_messages([message_id], take_more=_take_more(self))


@shared_task(name="flows.run_messages", acks_late=True, bind=True)
def run_messages_task(self, message_ids: list[str]) -> None:
    """Several messages accepted together (one publish for a burst), run one after another."""
    services.run_messages(message_ids, take_more=_take_more(self))


@shared_task(name="flows.run_timed_flow")
def run_timed_flow_task(flow_id: int) -> None:
    services.run_timed_flow(flow_id, trigger="cron")
