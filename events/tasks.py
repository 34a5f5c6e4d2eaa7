"""Celery tasks of events: thin wrappers that take ids and call services."""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="events.deliver", acks_late=True, ignore_result=True)
def deliver_task(delivery_id: int, manual: bool = False) -> None:
    services.attempt_delivery(delivery_id, manual=manual)


@shared_task(name="events.retry_due_deliveries", ignore_result=True)
def retry_due_deliveries_task() -> int:
    return services.retry_due_deliveries()


@shared_task(name="events.purge_old_outputs", ignore_result=True)
def purge_old_outputs_task() -> int:
    return services.purge_old_outputs()
