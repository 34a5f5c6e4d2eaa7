"""Celery tasks of flows: thin wrappers that take ids and call services."""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="flows.run_message", acks_late=True)
def run_message_task(message_id: str) -> None:
    services.run_message(message_id)


@shared_task(name="flows.run_messages", acks_late=True)
def run_messages_task(message_ids: list[str]) -> None:
    """Several messages accepted together (one publish for a burst), run one after another."""
    services.run_messages(message_ids)


@shared_task(name="flows.run_timed_flow")
def run_timed_flow_task(flow_id: int) -> None:
    services.run_timed_flow(flow_id, trigger="cron")
