"""Fixtures of the lib tests."""
import threading

import pytest
from django.db import connections


@pytest.fixture
def health_checks(monkeypatch):
    """One entry per connection health check (Django's `is_usable` before a use) on a thread other than
    the test's own; connections kept and tested as in production (the PostgreSQL test settings turn both off)."""
    monkeypatch.setitem(connections.settings["default"], "CONN_HEALTH_CHECKS", True)
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 60)
    tested = []
    wrapper_class = type(connections["default"])
    real_is_usable = wrapper_class.is_usable
    test_thread = threading.current_thread()

    def counted(self):
        if threading.current_thread() is not test_thread:
            tested.append(threading.current_thread().name)
        return real_is_usable(self)

    monkeypatch.setattr(wrapper_class, "is_usable", counted)
    return tested
