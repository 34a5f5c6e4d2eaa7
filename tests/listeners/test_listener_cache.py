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


def test_a_change_made_elsewhere_applies_within_the_ttl(client, user, async_flow, settings, monkeypatch):
    from types import SimpleNamespace

    from listeners import cache

    # The cache's own clock, moved by hand: a first request (it runs the flow too) took up to
    # 0.2 s of a 0.3 s TTL on a loaded machine, and the cached answer had expired before the second.
    now = [1000.0]
    monkeypatch.setattr(cache, "time", SimpleNamespace(monotonic=lambda: now[0]))
    settings.PUSHFLOW_LISTENER_CACHE_SECONDS = 0.3
    assert post(client, user).status_code == 202
    Listener.objects.filter(pk=async_flow.listener_id).update(enabled=False)  # no signal: like another process
    now[0] += 0.29
    assert post(client, user).status_code == 202
    now[0] += 0.02
    assert post(client, user).status_code == 404


def test_unknown_paths_are_cached_and_a_new_listener_clears_them(client, user, django_assert_max_num_queries):
    assert client.post("/listen/later", b"{}", content_type="application/json").status_code == 404
    with django_assert_max_num_queries(0):
        assert client.post("/listen/later", b"{}", content_type="application/json").status_code == 404
    Listener.objects.create(owner=user, name="later", path="later", auth="none")
    assert client.post("/listen/later", b"{}", content_type="application/json").status_code == 202


def test_while_one_thread_reloads_a_run_out_entry_the_others_use_it_without_a_query(settings):
    import threading

    from listeners import cache

    settings.PUSHFLOW_LISTENER_CACHE_SECONDS = 0.05
    loads, started, release = [], threading.Event(), threading.Event()

    def slow_load(path):
        loads.append(path)
        started.set()
        release.wait(5)
        return f"fresh {path}"

    cache.cached_listener("p", lambda path: "first")
    time.sleep(0.06)  # run out
    reloader = threading.Thread(target=cache.cached_listener, args=("p", slow_load))
    reloader.start()
    assert started.wait(5)
    assert cache.cached_listener("p", slow_load) == "first"  # served the entry; no second load
    release.set()
    reloader.join(5)
    assert loads == ["p"]
    assert cache.cached_listener("p", slow_load) == "fresh p"


def test_a_run_out_entry_is_reloaded_when_nobody_else_is(settings):
    from listeners import cache

    settings.PUSHFLOW_LISTENER_CACHE_SECONDS = 0.05
    cache.cached_listener("q", lambda path: "first")
    time.sleep(0.06)
    assert cache.cached_listener("q", lambda path: "second") == "second"


def test_a_failed_reload_leaves_the_next_request_free_to_try_again(settings):
    from listeners import cache

    settings.PUSHFLOW_LISTENER_CACHE_SECONDS = 0.05
    cache.cached_listener("r", lambda path: "first")
    time.sleep(0.06)

    def broken(path):
        raise RuntimeError("database away")

    with pytest.raises(RuntimeError):
        cache.cached_listener("r", broken)
    assert cache.cached_listener("r", lambda path: "again") == "again"
