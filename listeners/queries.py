"""The message list filters shared by the API and the messages page: listener, flow, status
(comma-separated), since/until (ISO 8601) and q (text in the payload), newest first."""
from __future__ import annotations

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import ValidationError

from config.api import id_param

from .models import Message


def _when(value: str, name: str):
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValidationError({name: [f"{value!r} is not an ISO 8601 date-time"]})
    if timezone.is_naive(parsed):  # a time typed in a form: the server's zone
        parsed = timezone.make_aware(parsed)
    return parsed


def filter_messages(queryset, params):
    """`queryset` narrowed by the filters in `params`; a ValidationError names a bad one."""
    for name in ("listener", "flow"):
        value = id_param(params, name)
        if value is not None:
            queryset = queryset.filter(**{f"{name}_id": value})
    if params.get("status"):
        statuses = params["status"].split(",")
        unknown = [s for s in statuses if s not in Message.Status.values]
        if unknown:
            raise ValidationError({"status": [f"unknown status {unknown[0]!r}; use {', '.join(Message.Status.values)}"]})
        queryset = queryset.filter(status__in=statuses)
    if params.get("since"):
        queryset = queryset.filter(received_at__gte=_when(params["since"], "since"))
    if params.get("until"):
        queryset = queryset.filter(received_at__lt=_when(params["until"], "until"))
    if params.get("q"):
        queryset = queryset.filter(body_text__icontains=params["q"])
    return queryset.order_by("-received_at")
