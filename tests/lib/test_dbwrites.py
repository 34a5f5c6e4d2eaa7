"""lib.dbwrites.write_transaction: SQLite's write lock waited for in short polls, the connection left as it was."""
import sqlite3
import threading
import time

import pytest
from django.db import OperationalError, connection

from lib.dbwrites import write_transaction
from listeners.models import Listener

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's busy handler only")]


def busy_timeout() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        return cursor.fetchone()[0]


def hold_write_lock(seconds: float) -> threading.Thread:
    """Another connection takes the write lock now and keeps it for `seconds`."""
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release():
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_it_waits_out_another_writer_and_commits_soon_after_the_lock_is_free(user):
    configured = busy_timeout()
    holder = hold_write_lock(0.4)
    started = time.monotonic()
    created = write_transaction(lambda: Listener.objects.create(owner=user, name="a", path="a"))
    waited = time.monotonic() - started
    holder.join()
    assert Listener.objects.filter(pk=created.pk).exists()
    assert 0.35 < waited < 0.4 + 0.1  # SQLite's own handler sleeps up to 100 ms a try, past the release
    assert busy_timeout() == configured == 30000


def test_past_the_connections_timeout_it_gives_up_and_leaves_nothing_written(user, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {**connection.settings_dict["OPTIONS"], "timeout": 0.2})
    holder = hold_write_lock(0.6)
    try:
        with pytest.raises(OperationalError, match="locked"):
            write_transaction(lambda: Listener.objects.create(owner=user, name="b", path="b"))
    finally:
        holder.join()
    assert not Listener.objects.filter(path="b").exists()
    assert busy_timeout() == 200


def test_inside_the_callers_transaction_it_runs_once_as_part_of_it(user):
    from django.db import transaction

    with transaction.atomic():
        write_transaction(lambda: Listener.objects.create(owner=user, name="c", path="c"))
        assert busy_timeout() == 30000  # untouched: the caller holds the lock already
    assert Listener.objects.filter(path="c").exists()
