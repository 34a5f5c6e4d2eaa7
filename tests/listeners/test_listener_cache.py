"""The per-process listener cache: a change saved here is seen at once, any other within the TTL."""
import time

import pytest

from listeners.models import Listener
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, user):
    return client.post("/listen/patients", b'{"id": 1}', content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")


def test_a_saved_change_applies_at_once(client, user, async_flow):
    assert post(client, user).status_code == 202
    listener = async_flow.listener
    listener.enabled = False
    listener.save()
    assert post(client, user).status_code == 404


def test_a_change_made_elsewhere_applies_within_the_ttl(client, user, async_flow, settings):
    settings.PUSHFLOW_LISTENER_CACHE_SECONDS = 0.3
    assert post(client, user).status_code == 202
    Listener.objects.filter(pk=async_flow.listener_id).update(enabled=False)  # no signal: like another process
    assert post(client, user).status_code == 202
    time.sleep(0.35)
    assert post(client, user).status_code == 404


def test_unknown_paths_are_cached_and_a_new_listener_clears_them(client, user, django_assert_max_num_queries):
    assert client.post("/listen/later", b"{}", content_type="application/json").status_code == 404
    with django_assert_max_num_queries(0):
        assert client.post("/listen/later", b"{}", content_type="application/json").status_code == 404
    Listener.objects.create(owner=user, name="later", path="later", auth="none")
    assert client.post("/listen/later", b"{}", content_type="application/json").status_code == 202
