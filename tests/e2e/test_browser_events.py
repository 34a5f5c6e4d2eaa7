"""The events pages in a real browser (Debian's Chromium driven by Playwright): a subscription
and a pull queue made through the API, a payload pushed over HTTP, then the subscription and
its delivery log (the run.succeeded sent to a local receiver, answered 200) on /subscriptions/
and the queue's depth on /queues/. Screenshots go to $PUSHFLOW_SCREENSHOTS when it is set."""
from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .process import ADMIN, Pushflow
from .test_browser_messages import CHROMIUM, shot

pytestmark = pytest.mark.e2e


class Receiver(BaseHTTPRequestHandler):
    """A subscriber's endpoint: keeps each event's JSON body and answers 200."""

    received: list = []

    def do_POST(self):  # noqa: N802  the name http.server calls
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed (Debian package chromium); .ci/run installs it")
    app = Pushflow(tmp_path_factory.mktemp("events"), env={"PUSHFLOW_OUTBOUND_ALLOW": "127.0.0.1"})
    try:
        app.start()
        yield app
    finally:
        app.stop()


def test_a_subscription_and_its_delivery_log_and_a_queue_show_on_their_pages(app, receiver):
    from playwright.sync_api import sync_playwright

    tag = uuid.uuid4().hex[:6]
    json_format = app.create("formats", {"name": f"json {tag}", "kind": "json", "options": {}})
    csv_format = app.create("formats", {"name": f"csv {tag}", "kind": "csv", "options": {"header": True}})
    out = app.create("connections", {"name": f"out {tag}", "kind": "folder",
                                     "options": {"path": tempfile.mkdtemp(prefix="pushflow-events-out-")}})
    listener = app.create("listeners", {"name": f"orders {tag}", "path": f"orders-{tag}", "mode": "async", "auth": "token"})
    flow = app.create("flows", {"name": f"orders {tag}", "listener": listener["id"], "source_format": json_format["id"],
                                "enabled": True, "mapping": {"fields": [{"target": "id", "source": "id"}]},
                                "destination": {"connection": out["id"], "format": csv_format["id"],
                                                "options": {"file_name": "{message_id}.csv"}}})
    subscription = app.create("subscriptions", {"url": receiver, "events": ["run.succeeded"], "flows": [flow["id"]]})
    assert subscription["secret"].startswith("whsec_")
    app.create("queues", {"name": f"invoices-{tag}", "flows": [flow["id"]], "lease_seconds": 90})

    status, body = app.request("POST", f"/listen/orders-{tag}", {"id": 7})
    assert status == 202, body
    app.wait_final([body["message_id"]])
    deadline = time.time() + 60
    while not any(event.get("type") == "run.succeeded" for event in Receiver.received) and time.time() < deadline:
        time.sleep(0.3)
    assert any(event.get("type") == "run.succeeded" for event in Receiver.received), Receiver.received

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        page.goto(app.base + "/login/")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("button[type=submit]")
        page.wait_for_url(app.base + "/")

        page.click("nav >> text=Subscriptions")
        section = page.locator(f"#subscription-{subscription['id']}")
        assert receiver in section.locator("h2").inner_text() and "enabled" in section.locator("h2").inner_text()
        assert f"orders {tag}" in section.locator("dl").inner_text()
        deadline = time.time() + 30  # the delivery row is final once its attempt is recorded
        while "succeeded" not in section.locator("tr.delivery").first.inner_text() and time.time() < deadline:
            time.sleep(0.5)
            page.reload()
        row = section.locator("tr.delivery").first
        assert "run.succeeded" in row.inner_text() and "succeeded" in row.locator(".status").inner_text()
        assert "#1" in row.locator(".attempt").inner_text() and "200" in row.locator(".attempt").inner_text()
        shot(page, "subscriptions")

        page.click("nav >> text=Queues")
        queue = page.locator("#queues tr.queue", has_text=f"invoices-{tag}")
        assert f"orders {tag}" in queue.inner_text() and "90 s" in queue.inner_text()
        assert queue.locator("td.available").inner_text() == "1" and queue.locator("td.leased").inner_text() == "0"
        shot(page, "queues")
        browser.close()
