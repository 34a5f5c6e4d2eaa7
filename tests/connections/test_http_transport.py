"""The HTTP transport against a local server: replies, retries, failures with the remote body,
the outbound guard, secrets kept out of every message, and a flow that answers with the reply."""
import json
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connections import services
from connections.models import Connection
from connections.outbound import OutboundRefused, check_url
from connections.transports import Delivery, TransportError, transports

http = transports.get("http")


class Recorder(BaseHTTPRequestHandler):
    calls: list = []
    flaky: dict = {}

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: bytes = b"", content_type: str = "application/json", headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self._answer(401 if self.path == "/private" else 200)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        Recorder.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path.startswith("/json"):
            self._answer(200, json.dumps({"ok": True, "got": len(body)}).encode())
        elif self.path == "/xml":
            self._answer(200, b"<ack>1</ack>", "application/xml")
        elif self.path == "/empty":
            self._answer(204)
        elif self.path == "/flaky":
            Recorder.flaky["n"] = Recorder.flaky.get("n", 0) + 1
            if Recorder.flaky["n"] == 1:
                self._answer(429, b'{"slow": "down"}', headers={"Retry-After": "0"})
            else:
                self._answer(200, b'{"ok": true}')
        elif self.path == "/fail":
            self._answer(500, b'{"error": "database exploded"}' + b"x" * 2000)
        elif self.path == "/bad":
            self._answer(400, b'{"error": "field qty is required"}')
        elif self.path == "/slow":
            time.sleep(2)
            self._answer(200, b"{}")


@pytest.fixture
def server(settings):
    settings.PUSHFLOW_OUTBOUND_ALLOW = ["127.0.0.1"]
    Recorder.calls, Recorder.flaky = [], {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def deliver(url: str, destination: dict | None = None, **options):
    return http.write({"url": url, **options}, options.pop("secrets", {}) if "secrets" in options else {},
                      destination or {}, Delivery(b'{"a": 1}', "application/json", {"message_id": "m-42", "flow": "f"}))


def test_a_json_reply_is_accepted_and_the_request_carries_an_idempotency_key(server):
    where = deliver(server + "/json/{message_id}", retries=0)
    assert "answered 200" in str(where)
    call = Recorder.calls[0]
    assert call["path"] == "/json/m-42" and call["body"] == b'{"a": 1}'
    assert call["headers"]["Idempotency-Key"] == "m-42" and call["headers"]["Content-Type"] == "application/json"


def test_429_is_retried_after_its_retry_after(server):
    assert "answered 200" in str(deliver(server + "/flaky", retries=2))
    assert len(Recorder.calls) == 2


def test_500_keeps_the_remote_body_cut_and_is_retryable(server):
    with pytest.raises(TransportError) as caught:
        deliver(server + "/fail", retries=1)
    assert caught.value.retryable and "500" in caught.value.reason and "database exploded" in caught.value.reason
    assert len(caught.value.reason) < 700 and len(Recorder.calls) == 2


def test_400_fails_at_once_and_is_not_retried(server):
    with pytest.raises(TransportError) as caught:
        deliver(server + "/bad", retries=3)
    assert not caught.value.retryable and "field qty is required" in caught.value.reason and len(Recorder.calls) == 1


def test_empty_reply_rules_and_a_slow_server(server):
    assert "answered 204" in str(deliver(server + "/empty"))
    assert "warning" in str(deliver(server + "/empty", {"empty": "warn"}))
    with pytest.raises(TransportError):
        deliver(server + "/empty", {"empty": "fail"})
    with pytest.raises(TransportError) as caught:
        deliver(server + "/slow", timeout=0.5, retries=0)
    assert caught.value.retryable and "timed out" in caught.value.reason


def test_the_reply_can_answer_the_caller(server):
    reply = deliver(server + "/xml", {"answer": "reply"})
    assert reply.body == b"<ack>1</ack>" and reply.content_type == "application/xml"


def test_secrets_are_sent_but_never_in_errors(server):
    with pytest.raises(TransportError) as caught:
        http.write({"url": server + "/fail", "auth": "bearer", "retries": 0}, {"token": "s3cr3t-token"}, {},
                   Delivery(b"{}", "application/json", {}))
    assert Recorder.calls[0]["headers"]["Authorization"] == "Bearer s3cr3t-token"
    assert "s3cr3t" not in caught.value.reason
    http.write({"url": server + "/json", "auth": "api_key", "api_key_header": "X-Key", "retries": 0}, {"api_key": "k-1"}, {},
               Delivery(b"{}", "application/json", {}))
    assert Recorder.calls[1]["headers"]["X-Key"] == "k-1"


def test_loopback_and_private_targets_are_refused_unless_allowed(settings):
    settings.PUSHFLOW_OUTBOUND_ALLOW = []
    for url in ("http://127.0.0.1:8000/", "http://localhost/", "http://169.254.169.254/latest/meta-data",
                "http://10.1.2.3/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"):
        with pytest.raises(OutboundRefused) as caught:
            check_url(url)
        assert "PUSHFLOW_OUTBOUND_ALLOW" in caught.value.reason
    with pytest.raises(OutboundRefused):
        check_url("file:///etc/passwd")
    with pytest.raises(OutboundRefused):
        check_url("http://user:pw@example.com/")
    public = check_url("http://example.com/", resolve=lambda host, port, type: [(2, 1, 6, "", ("93.184.216.34", port))])
    assert public.address == "93.184.216.34" and public.port == 80
    rebinding = lambda host, port, type: [(2, 1, 6, "", ("93.184.216.34", port)), (2, 1, 6, "", ("127.0.0.1", port))]  # noqa: E731
    with pytest.raises(OutboundRefused):
        check_url("http://rebind.example/", resolve=rebinding)


def test_the_test_action_says_what_failed(api, user, server, settings):
    ok = Connection.objects.create(owner=user, name="ok", kind="http", options={"url": server + "/json"})
    private = Connection.objects.create(owner=user, name="p", kind="http", options={"url": server + "/private"})
    assert api.post(f"/api/v1/connections/{ok.pk}/test").json() == {"ok": True, "detail": "127.0.0.1 answered 200"}
    assert "refused the credentials" in services.test_connection(private)[1]
    settings.PUSHFLOW_OUTBOUND_ALLOW = []
    answer = api.post(f"/api/v1/connections/{ok.pk}/test").json()
    assert answer["ok"] is False and "loopback" in answer["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_flow_delivers_to_http_and_a_sync_caller_gets_the_reply(server, user, json_format, client):
    import base64

    from flows.models import Flow
    from listeners.models import Listener
    from tests.conftest import PASSWORD

    connection = Connection.objects.create(owner=user, name="erp", kind="http", options={"url": server + "/json"})
    listener = Listener.objects.create(owner=user, name="s", path="relay", mode="sync", auth="basic")
    Flow.objects.create(owner=user, name="relay", listener=listener, source_format=json_format, destination_format=json_format,
                        destination_connection=connection, destination_options={"answer": "reply"},
                        mapping={"fields": [{"target": "a", "source": "a"}]})
    auth = "Basic " + base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    answer = client.post("/listen/relay", b'{"a": 7}', content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert answer.status_code == 200 and answer.json() == {"ok": True, "got": len(b'{"a":7}')}
    assert json.loads(Recorder.calls[0]["body"]) == {"a": 7}


def test_reply_formats_catch_a_reply_that_is_not_what_it_says(server):
    assert "answered 200" in str(deliver(server + "/json", {"reply_formats": {"application/json": "json"}}, retries=0))
    assert "answered 200" in str(deliver(server + "/xml", {"reply_formats": {"application/xml": "xml"}}, retries=0))
    with pytest.raises(TransportError) as caught:
        deliver(server + "/xml", {"reply_formats": {"*": "json"}}, retries=0)
    assert "not valid json" in caught.value.reason


def test_a_spooled_output_is_sent_whole_with_its_length_on_every_try(server):
    import io

    body = b'{"n": 1}\n' * 20_000  # past one read chunk
    delivery = Delivery(b"", "application/x-ndjson", {"message_id": "m-7"}, file=io.BytesIO(body))
    assert "answered 200" in str(http.write({"url": server + "/flaky", "retries": 2}, {}, {}, delivery))
    assert [call["body"] for call in Recorder.calls] == [body, body]  # the retry read the file again from its start
    assert Recorder.calls[1]["headers"]["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in Recorder.calls[1]["headers"]


@pytest.fixture
def tls_server(settings, tmp_path):
    """The recorder behind TLS with a self-signed certificate (trusted by nobody)."""
    settings.PUSHFLOW_OUTBOUND_ALLOW = ["127.0.0.1"]
    Recorder.calls = []
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_https_checks_the_certificate_unless_told_not_to(tls_server):
    for _ in range(2):  # the second time through the process's shared TLS contexts
        with pytest.raises(TransportError) as caught:
            deliver(tls_server + "/json", retries=0)
        assert "could not connect" in caught.value.reason and not Recorder.calls
        assert "answered 200" in str(deliver(tls_server + "/json", retries=0, verify_tls=False))
        assert Recorder.calls.pop()["body"] == b'{"a": 1}'
