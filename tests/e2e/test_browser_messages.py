"""The messages page in a real browser (Debian's Chromium driven by Playwright): a payload pushed
over HTTP is found by text, opened, resubmitted, and its second run shows up. Screenshots of
the pages go to $PUSHFLOW_SCREENSHOTS when it is set (docs/screenshots/ holds the README's)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from .process import ADMIN, Pushflow

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed (Debian package chromium); .ci/run installs it")
    app = Pushflow(tmp_path_factory.mktemp("browser"))
    try:
        app.start()
        out = tempfile.mkdtemp(prefix="pushflow-browser-out-")
        fj = app.create("formats", {"name": "json", "kind": "json", "options": {}})
        fc = app.create("formats", {"name": "csv", "kind": "csv", "options": {"header": True}})
        conn = app.create("connections", {"name": "out", "kind": "folder", "options": {"path": out}})
        listener = app.create("listeners", {"name": "lab results", "path": "lab", "mode": "async", "auth": "token"})
        app.create("flows", {"name": "lab to csv", "listener": listener["id"], "source_format": fj["id"], "enabled": True,
                             "mapping": {"fields": [{"target": "id", "source": "id"}, {"target": "patient", "source": "patient"}]},
                             "destination": {"connection": conn["id"], "format": fc["id"], "options": {"file_name": "{message_id}.csv"}}})
        yield app
    finally:
        app.stop()


@pytest.fixture
def page(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        page.goto(app.base + "/login/")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("button[type=submit]")
        page.wait_for_url(app.base + "/")
        yield page
        browser.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("PUSHFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def test_find_open_and_resubmit_a_message(app, page):
    patient = f"PAT-{uuid.uuid4().hex[:8]}"
    status, body = app.request("POST", "/listen/lab", {"id": 1, "patient": patient})
    assert status == 202
    message_id = body["message_id"]
    app.request("POST", "/listen/lab", {"id": 2, "patient": "someone else"})
    app.wait_final([message_id])

    page.click("text=Messages")
    page.fill("input[name=q]", patient)
    page.press("input[name=q]", "Enter")
    page.wait_for_url(f"**/messages/?*q={patient}*")
    rows = page.locator("#message-rows tr")
    assert rows.count() == 1 and "succeeded" in rows.first.inner_text()
    shot(page, "messages")

    page.click(f"a[href='/messages/{message_id}/']")
    assert patient in page.inner_text("#payload")
    assert json.loads(page.inner_text("#payload"))["patient"] == patient  # pretty-printed, still the payload
    assert page.locator("#runs tr.run").count() == 1
    shot(page, "message")

    page.click("button:has-text('Resubmit')")
    assert "Resubmitted" in page.inner_text("main")
    deadline = time.time() + 30
    while page.locator("#runs tr.run").count() < 2 and time.time() < deadline:
        time.sleep(0.5)
        page.reload()
    assert page.locator("#runs tr.run").count() == 2
    assert page.locator("#runs tr.run .status").all_inner_texts() == ["succeeded", "succeeded"]


def test_the_live_table_shows_a_new_message_without_reloading(app, page):
    page.goto(app.base + "/messages/")
    marker = f"LIVE-{uuid.uuid4().hex[:6]}"
    status, body = app.request("POST", "/listen/lab", {"id": 3, "patient": marker})
    assert status == 202
    page.wait_for_selector(f"a[href='/messages/{body['message_id']}/']", timeout=15_000)


def test_a_bad_filter_reads_as_a_message(app, page):
    page.goto(app.base + "/messages/?status=nonsense")
    assert "unknown status" in page.inner_text("[role=alert]")
