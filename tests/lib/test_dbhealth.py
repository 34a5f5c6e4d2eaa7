"""lib.dbhealth.RecentlyHealthy and the worker's task hooks that use it: which units of work pay
Django's connection health check (a `SELECT 1` round trip) first."""
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from django.db import DatabaseError, connection, transaction

import config.celery
from lib.dbhealth import RecentlyHealthy
from listeners.models import Listener

pytestmark = pytest.mark.django_db(transaction=True)


def on_one_thread(*steps):
    """Run the steps in order on one fresh thread (its own connection, outside the test's transaction)."""
    def run():
        try:
            for step in steps:
                step()
        finally:
            connection.close()

    with ThreadPoolExecutor(1, thread_name_prefix="unit-") as pool:
        pool.submit(run).result()


def query():
    Listener.objects.count()


def failing_query():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
    except DatabaseError:
        pass


def test_a_unit_right_after_a_clean_one_skips_the_check_but_one_after_an_error_or_a_pause_does_not(health_checks):
    health = RecentlyHealthy(seconds=60)
    unit = lambda work: (health.begin, work, health.end)  # noqa: E731
    on_one_thread(*unit(query), *unit(query))
    assert health_checks == []  # a fresh connection, then one that just ended cleanly
    on_one_thread(*unit(query), *unit(failing_query), *unit(query))
    assert len(health_checks) == 1  # after the error
    health_checks.clear()
    paused = RecentlyHealthy(seconds=0)  # as if the last clean unit were long ago
    on_one_thread(paused.begin, query, paused.end, paused.begin, query, paused.end)
    assert len(health_checks) == 1


def test_the_worker_tests_its_connection_only_before_a_task_that_does_not_follow_a_clean_one(health_checks, monkeypatch):
    monkeypatch.setattr(config.celery, "_task_connection_health", RecentlyHealthy(seconds=60))
    own = SimpleNamespace(request=SimpleNamespace(is_eager=False))

    def task(work):
        return (lambda: config.celery._drop_old_connections(task=own), work,
                lambda: config.celery._note_clean_connection(task=own))

    on_one_thread(*task(query), *task(query), *task(failing_query), *task(query))
    assert len(health_checks) == 1  # before the task after the failed one


def test_an_eager_task_leaves_its_callers_connection_and_transaction_alone(monkeypatch):
    monkeypatch.setattr(config.celery, "_task_connection_health", RecentlyHealthy(seconds=60))
    eager = SimpleNamespace(request=SimpleNamespace(is_eager=True))

    def inside_a_transaction():
        with transaction.atomic():
            Listener.objects.count()
            config.celery._drop_old_connections(task=eager)
            config.celery._note_clean_connection(task=eager)
            assert connection.in_atomic_block and Listener.objects.count() == 0

    on_one_thread(inside_a_transaction)
