"""The WSGI entry point: /listen/ takes the lean handler, which still answers every status and
sends the security headers; other paths keep the full middleware (sessions, CSRF)."""
import io
import json

import pytest

from config import wsgi
from config.wsgi import application
from listeners.models import Message
from tests.conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


def call(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict, bytes]:
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
        "CONTENT_LENGTH": str(len(body)), **(headers or {}),
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = {k.lower(): v for k, v in response_headers}

    content = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], content


def test_a_payload_through_the_lean_route_is_accepted_with_security_headers(user, async_flow):
    body = json.dumps({"id": 7, "name": {"family": "Lean"}}).encode()
    status, headers, content = call("POST", "/listen/patients", body, {
        "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {token_for(user)}"})
    assert status == 202 and json.loads(content)["message_id"] == headers["x-message-id"]
    assert headers["content-length"] == str(len(content))
    assert headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in headers and "cookie" not in headers.get("vary", "").lower()


def test_the_lean_route_answers_refusals(user, async_flow):
    assert call("POST", "/listen/patients", b"{}", {"CONTENT_TYPE": "application/json"})[0] == 401
    assert call("POST", "/listen/nowhere", b"{}")[0] == 404


def test_pages_keep_the_full_middleware():
    status, headers, _ = call("GET", "/login/")
    assert status == 200 and "csrftoken" in headers.get("set-cookie", "")


def test_a_host_not_allowed_gets_400_and_nothing_is_kept(user, async_flow, settings):
    settings.ALLOWED_HOSTS = ["pushflow.example"]
    status, headers, content = call("POST", "/listen/patients", b'{"id": 1}', {
        "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {token_for(user)}", "HTTP_HOST": "evil.example"})
    assert status == 400 and "evil.example" in json.loads(content)["error"]
    assert not Message.objects.exists()


def test_a_fault_inside_the_view_is_a_500_with_a_reason_not_a_crash(monkeypatch, caplog):
    def broken(request, path):
        raise RuntimeError("boom")

    monkeypatch.setattr(wsgi._lean, "ingest", broken)
    status, headers, content = call("POST", "/listen/patients", b"{}")
    assert status == 500 and headers["content-type"] == "application/json"
    assert "retry later" in json.loads(content)["error"]
    assert "boom" in caplog.text  # logged for the operator, not sent to the caller


def test_the_request_leaves_no_connection_past_its_age(user, async_flow, monkeypatch):
    closed = []
    monkeypatch.setattr(wsgi, "close_old_connections", lambda: closed.append(True))
    call("POST", "/listen/patients", b"{}", {"CONTENT_TYPE": "application/json"})
    assert closed == [True]
