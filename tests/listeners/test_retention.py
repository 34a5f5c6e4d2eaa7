"""Retention: finished messages older than their listener's days are purged with their runs and
body files; unfinished ones and listeners that keep forever are untouched."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flows.models import FlowRun
from listeners.models import Listener, Message
from listeners.services import purge_old_messages

pytestmark = pytest.mark.django_db


def aged(listener, user, days: int, status: str, body: bytes = b"{}") -> Message:
    message = Message(listener=listener, owner=user, method="POST", status=status,
                      received_at=timezone.now() - timedelta(days=days))
    message.store_body(body)
    message.save()
    return message


def test_old_finished_messages_go_with_their_runs_and_files(user, async_flow, settings):
    settings.PUSHFLOW_INLINE_BODY_BYTES = 10
    listener = async_flow.listener
    Listener.objects.filter(pk=listener.pk).update(retention_days=7)
    old = aged(listener, user, 8, "succeeded", b'{"large": "enough to be a file"}')
    FlowRun.objects.create(flow=async_flow, message=old, status="succeeded")
    body_file = settings.PUSHFLOW_BODY_DIR / old.body_file
    assert body_file.exists()
    waiting = aged(listener, user, 30, "queued")
    recent = aged(listener, user, 2, "failed")
    keeper = Listener.objects.create(owner=user, name="keep", path="keep", retention_days=0)
    forever = aged(keeper, user, 400, "succeeded")
    assert purge_old_messages() == 1
    assert not Message.objects.filter(pk=old.pk).exists() and not FlowRun.objects.filter(message_id=old.pk).exists()
    assert not body_file.exists()
    assert set(Message.objects.values_list("pk", flat=True)) == {waiting.pk, recent.pk, forever.pk}


def test_retention_is_set_per_listener_through_the_api(api, async_flow):
    answer = api.patch(f"/api/v1/listeners/{async_flow.listener_id}/", {"retention_days": 90}, format="json")
    assert answer.status_code == 200 and answer.json()["retention_days"] == 90
