"""Pushes accepted on the event loop (listeners/loop_ingest.py): which ones qualify, that they
touch no database on the loop, and that they are stored and answered as the ingest view would."""
from __future__ import annotations

import asyncio
import io
import json
from unittest import mock

import pytest
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.db import OperationalError

from accounts.authentication import user_for_token
from config import wsgi
from config.asgi import ThreadedWSGI
from config.wsgi import LEAN_PREFIX, answer_on_loop
from config.wsgi import application as wsgi_application
from listeners import loop_ingest, writer
from listeners.models import Listener, Message
from listeners.views import resolve_listener
from tests.config.test_asgi_bridge import Channel, scope
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)
BODY = json.dumps({"id": 7, "name": {"family": "Loop"}}).encode()


@pytest.fixture(autouse=True)
def loop_settings(settings):
    settings.PUSHFLOW_GROUP_COMMIT = True
    settings.PUSHFLOW_LOOP_INGEST = True
    settings.CELERY_TASK_ALWAYS_EAGER = False  # queued rows wait for a worker's dispatcher


@pytest.fixture
def token(user, async_flow):
    raw = token_for(user)
    user_for_token(raw)  # checked once, as the view does on a thread: now remembered
    resolve_listener("patients")
    return raw


def environ(body: bytes = BODY, path: str = "/listen/patients", method: str = "POST", **headers) -> dict:
    return {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.1.2.3", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json", **headers,
    }


def admit(body: bytes = BODY, path: str = "patients", **headers):
    return loop_ingest.admit(WSGIRequest(environ(body, "/listen/" + path, **headers)), path, body)


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_a_plain_push_is_admitted_in_memory_with_the_fields_the_view_would_set(token, user, async_flow,
                                                                                django_assert_num_queries):
    with django_assert_num_queries(0):
        message = admit(**bearer(token))
    assert message is not None and not Message.objects.filter(pk=message.pk).exists()  # nothing written yet
    assert (message.listener_id, message.owner_id, message.user_id, message.flow_id) == \
        (async_flow.listener_id, user.pk, user.pk, async_flow.pk)
    assert message.status == Message.Status.QUEUED and message.read_body() == BODY
    assert message.remote_addr == "10.1.2.3" and message.content_type == "application/json"
    assert message.headers["Authorization"] == "***"  # credentials are never kept


@pytest.mark.parametrize("change", [
    pytest.param(lambda listener: setattr(listener, "mode", Listener.Mode.SYNC), id="sync mode"),
    pytest.param(lambda listener: setattr(listener, "rate_limit", 5), id="rate limit"),
    pytest.param(lambda listener: setattr(listener, "max_concurrent", 2), id="concurrency cap"),
    pytest.param(lambda listener: setattr(listener, "dedupe_window_seconds", 60), id="dedupe window"),
    pytest.param(lambda listener: setattr(listener, "max_body_bytes", 10), id="body over the limit"),
    pytest.param(lambda listener: setattr(listener, "ip_allowlist", ["192.0.2.0/24"]), id="address not allowed"),
    pytest.param(lambda listener: setattr(listener, "methods", ["PUT"]), id="method not allowed"),
    pytest.param(lambda listener: setattr(listener, "content_types", ["application/xml"]), id="media type refused"),
    pytest.param(lambda listener: setattr(listener, "auth", Listener.Auth.BASIC), id="basic auth"),
])
def test_a_listener_the_loop_cannot_serve_in_memory_goes_to_a_thread(token, change):
    listener = Listener.objects.get(path="patients")
    change(listener)
    listener.save()  # clears the cache: remembered again as the view would load it
    resolve_listener("patients")
    assert admit(**bearer(token)) is None
    assert not Message.objects.exists()


@pytest.mark.parametrize("headers", [
    pytest.param({"HTTP_ORIGIN": "https://app.example"}, id="CORS request"),
    pytest.param({"HTTP_IDEMPOTENCY_KEY": "k1"}, id="Idempotency-Key"),
    pytest.param({"HTTP_WEBHOOK_ID": "w1"}, id="webhook-id"),
    pytest.param({"HTTP_CONTENT_ENCODING": "gzip"}, id="compressed body"),
])
def test_a_request_the_loop_cannot_answer_in_memory_goes_to_a_thread(token, headers):
    assert admit(**bearer(token), **headers) is None
    assert not Message.objects.exists()


def test_a_host_not_allowed_raises_for_the_web_server_to_hand_the_push_to_a_thread(token, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    with pytest.raises(DisallowedHost):
        admit(**bearer(token), HTTP_HOST="evil.example")
    assert not Message.objects.exists()


def test_credentials_not_checked_lately_go_to_a_thread(token, user):
    assert admit(**bearer(token_for(user))) is None  # valid, but this process has not seen it yet
    assert admit(**bearer("not-a-token")) is None
    assert admit() is None  # none at all: the view answers 401 and keeps the refusal
    assert admit(HTTP_AUTHORIZATION="Basic YWxpY2U6eA==") is None


def test_a_path_the_cache_does_not_hold_goes_to_a_thread(token, settings):
    assert admit(path="elsewhere") is None
    assert admit(path="../../etc") is None
    settings.PUSHFLOW_LOOP_INGEST = False
    assert admit(**bearer(token)) is None


def test_an_api_key_listener_is_served_on_the_loop_only_with_the_right_key(user, async_flow):
    listener = Listener.objects.get(path="patients")
    listener.auth = Listener.Auth.API_KEY
    listener.secrets = {"api_key": "s3cret-key"}
    listener.save()
    resolve_listener("patients")
    assert admit(HTTP_X_API_KEY="s3cret-key") is not None
    assert admit(HTTP_X_API_KEY="wrong") is None


def test_a_push_is_answered_202_once_its_row_is_committed(token):
    request = WSGIRequest(environ(**bearer(token)))
    message = loop_ingest.admit(request, "patients", BODY)
    assert asyncio.run(loop_ingest.store(message)) is None
    stored = Message.objects.get(pk=message.pk)
    assert stored.status == Message.Status.QUEUED and stored.read_body() == BODY
    status, headers, body = loop_ingest.accepted_answer(request, message, [(b"x-extra", b"1")])
    assert status == 202 and dict(headers)[b"x-message-id"] == str(message.pk).encode()
    assert dict(headers)[b"content-length"] == str(len(body)).encode() and dict(headers)[b"x-extra"] == b"1"
    assert json.loads(body)["status_url"] == f"http://testserver/api/v1/messages/{message.pk}/"


def test_a_push_is_answered_503_and_nothing_kept_when_the_store_fails(token):
    request = WSGIRequest(environ(**bearer(token)))
    message = loop_ingest.admit(request, "patients", BODY)
    down = OperationalError("disk I/O error")
    with mock.patch.object(writer, "insert_messages", side_effect=down), \
            mock.patch.object(writer, "store_in_one_statement", side_effect=down), \
            mock.patch.object(Message, "save", side_effect=down):
        response = asyncio.run(loop_ingest.store(message))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "not kept" in json.loads(response.content)["error"]
    assert not Message.objects.exists()


def push(token: str, body: bytes = BODY, extra=(), on_loop=answer_on_loop) -> Channel:
    """A push through the web server's application, as uvicorn would hand it over."""
    headers = [("host", "testserver"), ("content-type", "application/json"), ("content-length", str(len(body))),
               ("authorization", f"Bearer {token}"), *extra]
    channel = Channel({"type": "http.request", "body": body, "more_body": False})
    app = ThreadedWSGI(wsgi_application, threads=2, read_timeout=5.0, on_loop=on_loop, on_loop_prefix=LEAN_PREFIX)
    asyncio.run(app(scope(path="/listen/patients", headers=headers), channel.receive, channel.send))
    return channel


@pytest.fixture
def thread_calls(monkeypatch):
    """The pushes the ingest view answered on a thread."""
    calls = []
    view = wsgi._lean.ingest

    def spy(request, path):
        calls.append(path)
        return view(request, path)

    monkeypatch.setattr(wsgi._lean, "ingest", spy)
    return calls


def test_the_web_server_answers_on_the_loop_as_the_view_does_on_a_thread(user, async_flow, thread_calls):
    raw = token_for(user)
    on_thread = push(raw)  # the first push loads the listener and checks the token, on a thread
    on_loop = push(raw)
    assert thread_calls == ["patients"]
    assert on_thread.status == on_loop.status == 202
    assert list(on_thread.headers) == list(on_loop.headers)  # the same headers, in the same order
    assert {k: v for k, v in on_thread.headers.items() if k not in ("x-message-id", "content-length")} == \
        {k: v for k, v in on_loop.headers.items() if k not in ("x-message-id", "content-length")}
    assert "x-content-type-options" in on_loop.headers  # the security middleware's headers are there
    assert on_loop.headers["content-length"] == str(len(on_loop.body))
    first, second = (Message.objects.get(pk=json.loads(c.body)["message_id"]) for c in (on_thread, on_loop))
    same = ("listener_id", "owner_id", "user_id", "flow_id", "status", "method", "path", "content_type", "headers",
            "remote_addr", "size", "sha256", "body_text")
    assert {f: getattr(first, f) for f in same} == {f: getattr(second, f) for f in same}
    assert second.headers["Authorization"] == "***"


def test_over_https_the_loop_answer_carries_hsts_as_the_view_does(user, async_flow, thread_calls, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    started_now = wsgi.ListenerApp()  # reads the settings when it starts, as a web process does
    raw = token_for(user)
    answers = [push(raw, extra=[("x-forwarded-proto", "https")], on_loop=started_now.answer_on_loop) for _ in range(2)]
    assert len(thread_calls) == 1 and [a.status for a in answers] == [202, 202]
    assert answers[1].headers["strict-transport-security"] == "max-age=3600"
    assert json.loads(answers[1].body)["status_url"].startswith("https://testserver/")


def test_a_refusal_on_the_loop_path_is_answered_and_kept_by_the_view(user, async_flow, thread_calls):
    raw = token_for(user)
    push(raw)
    refused = push(raw, extra=[("content-encoding", "br")])
    assert len(thread_calls) == 2 and refused.status == 415
    wrong = push("not-a-token")
    assert wrong.status == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    assert Message.objects.filter(status=Message.Status.REJECTED).count() == 2


def test_a_fault_on_the_loop_is_a_500_with_a_reason(user, async_flow, thread_calls, monkeypatch, caplog):
    raw = token_for(user)
    push(raw)

    async def broken(message):
        raise RuntimeError("boom")

    monkeypatch.setattr(loop_ingest, "store", broken)
    answer = push(raw)
    assert answer.status == 500 and "retry later" in json.loads(answer.body)["error"]
    assert "boom" in caplog.text and "boom" not in answer.body.decode()


@pytest.fixture
def clock(monkeypatch):
    """The caches' clock, moved by hand."""
    from types import SimpleNamespace

    from accounts import authentication
    from listeners import cache

    now = [1000.0]
    fake = SimpleNamespace(monotonic=lambda: now[0])
    monkeypatch.setattr(cache, "time", fake)
    monkeypatch.setattr(authentication, "time", fake)
    return now


def test_near_its_end_a_listener_entry_sends_one_push_to_a_thread_which_reloads_it(settings, clock):
    from listeners import cache

    settings.PUSHFLOW_LISTENER_CACHE_SECONDS = 1.0
    cache.cached_listener("p", lambda path: "first")
    clock[0] += 0.5
    assert cache.remembered("p") == (True, "first")
    clock[0] += 0.3  # in its last quarter
    assert cache.remembered("p") == (False, None)  # this push goes to a thread...
    assert cache.remembered("p") == (True, "first")  # ...the others stay on the loop meanwhile
    assert cache.cached_listener("p", lambda path: "second") == "second"  # the thread reloads it before its time
    clock[0] += 0.5  # past the first entry's end, in the new one's time
    assert cache.remembered("p") == (True, "second")


def test_a_reload_ahead_of_time_that_fails_keeps_serving_the_entry(settings, clock):
    from listeners import cache

    settings.PUSHFLOW_LISTENER_CACHE_SECONDS = 1.0
    cache.cached_listener("p", lambda path: "first")
    clock[0] += 0.8
    assert cache.remembered("p") == (False, None)

    def database_away(path):
        raise OperationalError("connection refused")

    assert cache.cached_listener("p", database_away) == "first"
    clock[0] += 0.3  # run out: now a failed load is the caller's error
    with pytest.raises(OperationalError):
        cache.cached_listener("p", database_away)


def test_near_its_end_a_token_entry_is_checked_again_by_one_thread(user, settings, clock, django_assert_num_queries):
    from accounts.authentication import remembered_token_user

    settings.PUSHFLOW_TOKEN_CACHE_SECONDS = 4.0
    raw = token_for(user)
    assert user_for_token(raw) == user
    clock[0] += 3.5
    assert remembered_token_user(raw) is None  # this push goes to a thread...
    assert remembered_token_user(raw) == user  # ...the others stay on the loop
    with django_assert_num_queries(1):
        assert user_for_token(raw) == user  # checked again before the entry ran out
    with django_assert_num_queries(0):
        assert user_for_token(raw) == user
    clock[0] += 3.0
    assert remembered_token_user(raw) == user  # the entry was renewed
