"""Timed flows: one django-celery-beat periodic task per flow with a cron or interval trigger,
kept in step with the Flow row (created, changed, disabled, deleted) by `sync_schedule`."""
from __future__ import annotations

import json

from celery.schedules import crontab
from django.conf import settings
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from .models import Flow

TASK = "flows.run_timed_flow"


class ScheduleError(ValueError):
    pass


def task_name(flow_id: int) -> str:
    return f"pushflow-flow-{flow_id}"


def parse_cron(text: str) -> dict:
    """`m h dom mon dow` as CrontabSchedule fields; ScheduleError when it is not a cron line."""
    parts = str(text or "").split()
    if len(parts) != 5:
        raise ScheduleError(f"a cron schedule has 5 fields (minute hour day-of-month month day-of-week), not {text!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    try:
        crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week)
    except (ValueError, TypeError) as exc:
        raise ScheduleError(f"{text!r} is not a valid cron schedule: {exc}") from None
    return {"minute": minute, "hour": hour, "day_of_month": day_of_month, "month_of_year": month_of_year,
            "day_of_week": day_of_week}


def parse_interval(text) -> int:
    try:
        seconds = int(str(text).strip())
    except (TypeError, ValueError):
        raise ScheduleError(f"an interval schedule is a number of seconds, not {text!r}") from None
    if seconds < 1:
        raise ScheduleError("an interval must be at least 1 second")
    return seconds


def validate(trigger: str, schedule) -> str:
    """The schedule text to store for `trigger`, or ScheduleError."""
    if trigger == Flow.Trigger.CRON:
        parse_cron(schedule)
        return " ".join(str(schedule).split())
    if trigger == Flow.Trigger.INTERVAL:
        return str(parse_interval(schedule))
    return "" if schedule in (None, "") else str(schedule)


def sync_schedule(flow: Flow) -> None:
    """Create, update or remove the flow's periodic task to match its trigger and state."""
    name = task_name(flow.pk)
    if not flow.enabled or flow.trigger not in (Flow.Trigger.CRON, Flow.Trigger.INTERVAL):
        PeriodicTask.objects.filter(name=name).delete()
        return
    fields = {"task": TASK, "args": json.dumps([flow.pk]), "enabled": True, "crontab": None, "interval": None,
              "description": f"Timed run of flow {flow.name!r}", "queue": None}
    try:
        if flow.trigger == Flow.Trigger.CRON:
            fields["crontab"], _ = CrontabSchedule.objects.get_or_create(**parse_cron(flow.schedule), timezone=settings.TIME_ZONE)
        else:
            fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=parse_interval(flow.schedule), period=IntervalSchedule.SECONDS)
    except ScheduleError:
        PeriodicTask.objects.filter(name=name).delete()  # an invalid schedule runs nothing rather than the old one
        return
    PeriodicTask.objects.update_or_create(name=name, defaults=fields)


def remove_schedule(flow_id: int) -> None:
    PeriodicTask.objects.filter(name=task_name(flow_id)).delete()
