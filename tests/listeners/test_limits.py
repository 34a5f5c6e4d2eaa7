"""Per-listener rate limit and concurrency cap: 429 with Retry-After, refusals sampled when kept."""
import threading

import pytest

import flows.services
from listeners.models import Listener, Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, user):
    return client.post("/listen/patients", b'{"id": 1}', content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")


def test_over_the_rate_is_429_with_retry_after_and_refusals_are_sampled(client, user, async_flow):
    Listener.objects.filter(pk=async_flow.listener_id).update(rate_limit=3)
    answers = [post(client, user) for _ in range(10)]
    statuses = [a.status_code for a in answers]
    assert statuses[:3] == [202, 202, 202]
    assert statuses.count(429) >= 6
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused["Retry-After"]) >= 1 and "rate limit" in refused.json()["error"]
    assert Message.objects.filter(status="rejected", response_status=429).count() == 1  # one kept for the flood


def test_more_than_the_cap_at_once_is_429(user, sync_flow, monkeypatch):
    from django.db import connection
    from django.test import Client

    Listener.objects.filter(pk=sync_flow.listener_id).update(max_concurrent=1, auth="none")
    inside, release = threading.Event(), threading.Event()
    real = flows.services.execute

    def slow(*args, **kwargs):
        inside.set()
        release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(flows.services, "execute", slow)
    first = {}

    def call():
        try:
            first["r"] = Client().post("/listen/echo", b'{"name": {"family": "A"}}', content_type="application/json")
        finally:
            connection.close()

    worker = threading.Thread(target=call)
    worker.start()
    assert inside.wait(5)
    second = Client().post("/listen/echo", b'{"name": {"family": "B"}}', content_type="application/json")
    release.set()
    worker.join(10)
    assert second.status_code == 429 and "at once" in second.json()["error"]
    assert first["r"].status_code == 200
    assert Client().post("/listen/echo", b'{"name": {"family": "C"}}', content_type="application/json").status_code == 200
