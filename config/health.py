"""GET /healthz: 200 when the database and the broker answer, 503 otherwise."""
from __future__ import annotations

import threading
import time

import orjson
from django.db import DatabaseError, connection
from django.http import HttpResponse

from .celery import app as celery_app

_BROKER_CACHE_SECONDS = 2.0
_broker_state = {"checked": 0.0, "ok": False, "detail": ""}
_broker_lock = threading.Lock()


def database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, "ok"
    except DatabaseError as exc:
        return False, f"unreachable ({exc.__class__.__name__})"


def broker_ok() -> tuple[bool, str]:
    """Connect to the broker, at most once every two seconds per process."""
    with _broker_lock:
        if time.monotonic() - _broker_state["checked"] < _BROKER_CACHE_SECONDS:
            return _broker_state["ok"], _broker_state["detail"]
        try:
            with celery_app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            ok, detail = True, "ok"
        except Exception as exc:  # any transport error means "not reachable"
            ok, detail = False, f"unreachable ({exc.__class__.__name__})"
        _broker_state.update(checked=time.monotonic(), ok=ok, detail=detail)
        return ok, detail


def healthz(request):
    db, db_detail = database_ok()
    broker, broker_detail = broker_ok()
    status = 200 if db and broker else 503
    body = {"status": "ok" if status == 200 else "unavailable", "database": db_detail, "broker": broker_detail}
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")
