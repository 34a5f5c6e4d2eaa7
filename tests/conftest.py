"""Shared fixtures: users, authenticated API clients, and ready-made formats, connections,
listeners and flows."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import ApiToken
from connections.models import Connection
from flows.models import Flow
from formats.models import Format
from listeners.models import Listener

PASSWORD = "S3cure-Pass-2026!"


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", superuser: bool = False):
        User = get_user_model()
        if superuser:
            return User.objects.create_superuser(username=username, password=PASSWORD, email="")
        return User.objects.create_user(username=username, password=PASSWORD)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("bob")


@pytest.fixture
def admin_user(make_user):
    return make_user("root", superuser=True)


def token_for(user) -> str:
    _, raw = ApiToken.issue(user, 3600)
    return raw


@pytest.fixture
def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


@pytest.fixture
def json_format(user):
    return Format.objects.create(owner=user, name="json", kind="json", options={})


@pytest.fixture
def csv_format(user):
    return Format.objects.create(owner=user, name="csv", kind="csv", options={"delimiter": ",", "header": True})


@pytest.fixture
def out_folder(user, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return Connection.objects.create(owner=user, name="out", kind="folder", options={"path": str(folder)})


@pytest.fixture
def async_flow(user, json_format, csv_format, out_folder):
    """An async, token-auth listener at /listen/patients whose flow writes one CSV per message."""
    listener = Listener.objects.create(owner=user, name="patients", path="patients", mode="async", methods=["POST"], auth="token")
    return Flow.objects.create(
        owner=user, name="patients to csv", listener=listener, source_format=json_format,
        mapping={"fields": [
            {"target": "id", "source": "id", "type": "integer"},
            {"target": "family", "source": "name.family"},
        ]},
        destination_connection=out_folder, destination_format=csv_format,
        destination_options={"file_name": "{message_id}.csv"},
    )


@pytest.fixture
def sync_flow(user, json_format):
    """A sync, basic-auth listener at /listen/echo answering the mapped JSON."""
    listener = Listener.objects.create(owner=user, name="echo", path="echo", mode="sync", methods=["POST"], auth="basic")
    return Flow.objects.create(
        owner=user, name="echo", listener=listener, source_format=json_format,
        mapping={"fields": [{"target": "full", "source": "name.family"}]},
        destination_format=json_format,
    )


@pytest.fixture(autouse=True)
def _fresh_listener_cache():
    """Each test has its own database, so no listener resolved in another test may linger."""
    from listeners import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_mapping_cache():
    """Compiled mappings are cached by (flow id, version), and ids repeat from test to test."""
    from flows import engine

    engine._cache.clear()
    yield
    engine._cache.clear()


@pytest.fixture(autouse=True)
def _fresh_events_interest():
    """The snapshot of who listens to which flow is cached per process, and flushing a test's
    database sends no signal: a subscription of an earlier test must not make this one's runs
    look heard of."""
    from events import interest

    interest.clear()
    yield
    interest.clear()


@pytest.fixture(autouse=True)
def _fresh_listener_limits():
    from listeners import limits

    limits.reset()
    yield
