"""Building a flow only through the UI, in a real browser (Debian's Chromium driven by
Playwright): JSON and CSV formats, a folder connection, a listener, a flow whose mapping is
made by click and by drag in the mapping editor, enabled from the designer; then a payload
pushed over HTTP is found on the messages page, opened, resubmitted, and its second run
shows. A second test types a bad expression and sees the inline error, then the preview; a
third collapses the source tree by mouse and keyboard and sets a field's default and required.
Screenshots of the pages go to $PUSHFLOW_SCREENSHOTS when it is set."""
from __future__ import annotations

import csv
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from .process import ADMIN, Pushflow
from .test_browser_messages import CHROMIUM, shot

pytestmark = pytest.mark.e2e
SAMPLE = '{"id": 1, "customer": {"name": "Ann Example"}, "total": 9.5}'


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed (Debian package chromium); .ci/run installs it")
    app = Pushflow(tmp_path_factory.mktemp("designer"))
    try:
        app.start()
        app.out = tempfile.mkdtemp(prefix="pushflow-designer-out-")
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(15_000)
    page.goto(app.base + "/login/")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(app.base + "/")
    yield page
    page.close()


def save(page) -> None:
    page.click("button:has-text('Save')")
    page.wait_for_load_state()


def build_flow_through_the_ui(app, page, tag: str) -> str:
    """Formats, connection, listener and flow made with the pages; returns the flow's page URL."""
    page.click("nav >> text=Formats")
    page.click("text=New format")
    page.click("a:has-text('JSON')")
    page.fill("#id-name", f"orders json {tag}")
    page.fill("#id-sample", SAMPLE)
    save(page)
    assert f"Saved format 'orders json {tag}'" in page.inner_text("main")

    page.goto(app.base + "/formats/new?kind=csv")
    page.fill("#id-name", f"orders csv {tag}")
    page.fill("#id-options\\.delimiter", ";;;")  # a bad option first: the error shows beside the field
    save(page)
    assert "is too long" in page.inner_text("[data-field=delimiter] .field-error")
    page.fill("#id-options\\.delimiter", ",")
    save(page)
    assert f"orders csv {tag}" in page.inner_text("#formats-table")

    page.click("nav >> text=Connections")
    page.click("text=New connection")
    page.click("a:has-text('Folder')")
    page.fill("#id-name", f"out {tag}")
    page.fill("#id-options\\.path", app.out)
    save(page)

    page.click("nav >> text=Listeners")
    page.click("text=New listener")
    page.fill("#id-name", f"orders {tag}")
    page.fill("#id-path", f"orders-{tag}")
    page.select_option("#id-auth", "token")
    save(page)
    assert f"/listen/orders-{tag}" in page.inner_text("#listener-url")
    shot(page, "listener")

    page.click("nav >> text=Flows")
    page.click("text=New flow")
    page.fill("#id-name", f"orders to csv {tag}")
    page.select_option("#id-listener", label=f"orders {tag} (/listen/orders-{tag})")
    page.select_option("#id-source_format", label=f"orders json {tag} (json)")
    page.select_option("#id-destination\\.connection", label=f"out {tag} (folder)")
    page.select_option("#id-destination\\.format", label=f"orders csv {tag} (csv)")
    save(page)
    assert "a mapping with at least one field" in page.inner_text("#missing")
    assert page.is_disabled("#enable-flow")
    flow_url = page.url

    page.click("#step-destination summary")
    page.fill("#id-destination\\.options\\.file_name", "{message_id}.csv")
    page.click("button:has-text('Save destination')")
    assert "{message_id}.csv" in page.inner_text("#step-destination")

    page.click("text=Open the mapping editor")
    page.click("#source-tree button[data-path='id']")  # by click: the field, then the row
    page.click("#targets tr.target-row >> nth=0 >> button.map-here")
    page.drag_and_drop("#source-tree button[data-path='customer.name']", "#new-field")  # by drag
    targets = page.locator("#targets input.target")
    assert [targets.nth(i).input_value() for i in range(targets.count())] == ["id", "name"]
    page.wait_for_function("document.getElementById('preview-output').textContent.includes('Ann Example')")
    page.click("#save-mapping")
    page.wait_for_function("document.getElementById('save-status').textContent === 'Saved.'")
    page.locator("#preview-output").scroll_into_view_if_needed()  # the picture shows the preview
    shot(page, "mapping")

    page.goto(flow_url)
    assert page.locator("#missing").count() == 0
    page.click("#enable-flow")
    assert "Enabled flow" in page.inner_text("main")
    shot(page, "flow")
    return flow_url


def test_build_a_json_to_csv_flow_in_the_ui_push_find_and_resubmit(app, page):
    tag = uuid.uuid4().hex[:6]
    build_flow_through_the_ui(app, page, tag)
    customer = f"Customer-{uuid.uuid4().hex[:8]}"
    status, body = app.request("POST", f"/listen/orders-{tag}", {"id": 41, "customer": {"name": customer}, "total": 3})
    assert status == 202, body
    message_id = body["message_id"]
    app.wait_final([message_id])
    written = Path(app.out) / f"{message_id}.csv"
    assert list(csv.DictReader(written.open())) == [{"id": "41", "name": customer}]

    page.click("nav >> text=Messages")
    page.fill("input[name=q]", customer)
    page.press("input[name=q]", "Enter")
    page.wait_for_url(f"**/messages/?*q={customer}*")
    rows = page.locator("#message-rows tr")
    assert rows.count() == 1 and "succeeded" in rows.first.inner_text()
    page.click(f"a[href='/messages/{message_id}/']")
    assert customer in page.inner_text("#payload")
    page.click("button:has-text('Resubmit')")
    assert "Resubmitted" in page.inner_text("main")
    deadline = time.time() + 30
    while page.locator("#runs tr.run").count() < 2 and time.time() < deadline:
        time.sleep(0.5)
        page.reload()
    assert page.locator("#runs tr.run .status").all_inner_texts() == ["succeeded", "succeeded"]

    page.click("nav >> text=Dashboard")
    page.wait_for_selector("#chart polyline")
    assert f"orders {tag}" in page.inner_text("#chart-legend")
    shot(page, "dashboard")
    page.click("nav >> text=Runs")
    assert page.locator("table.runs tr.run").count() >= 2
    shot(page, "runs")


def test_a_bad_expression_shows_an_inline_error_and_the_preview_comes_back(app, page):
    tag = uuid.uuid4().hex[:6]
    flow_url = build_flow_through_the_ui(app, page, tag)
    page.goto(flow_url + "mapping")
    page.wait_for_function("document.getElementById('preview-output').textContent.includes('Ann Example')")
    row = page.locator("#targets tr.target-row").nth(1)
    row.locator("select.kind").select_option("expr")
    row.locator("input.value").fill("customer.name &")
    page.wait_for_function("document.querySelectorAll('#targets .inline-error')[1].textContent.length > 0")
    assert row.locator(".inline-error").inner_text()  # under the field the 400 named
    assert "fix the error" in page.inner_text("#preview-status")
    shot(page, "mapping-error")
    row.locator("input.value").fill("$uppercase(customer.name)")
    page.wait_for_function("document.getElementById('preview-output').textContent.includes('ANN EXAMPLE')")
    assert row.locator(".inline-error").inner_text() == ""
    assert '"id": 1' in page.inner_text("#preview-input")


def test_the_source_tree_collapses_by_mouse_and_keyboard_and_a_default_is_set_in_its_row(app, page):
    tag = uuid.uuid4().hex[:6]
    flow_url = build_flow_through_the_ui(app, page, tag)
    page.goto(flow_url + "mapping")
    nested = page.locator("#source-tree button[data-path='customer.name']")
    toggle = page.locator("#source-tree button.toggle[data-group='customer']")
    assert nested.is_visible() and nested.inner_text() == "name"  # under its parent, by its own name
    toggle.click()
    assert not nested.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    toggle.focus()
    page.keyboard.press("ArrowRight")  # expands
    assert nested.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    page.keyboard.press("ArrowRight")  # goes into the group
    assert page.evaluate("document.activeElement.dataset.path") == "customer.name"
    page.keyboard.press("ArrowLeft")  # back up to the group's toggle
    page.keyboard.press("ArrowLeft")  # collapses it
    assert not nested.is_visible()

    page.click("#new-field")
    row = page.locator("#targets tr.target-row").nth(2)
    row.locator("input.target").fill("email")
    row.locator("input.value").fill("customer.email")  # not in the payload: the default fills it
    row.locator("input.default").fill("n/a")
    page.wait_for_function("document.getElementById('preview-output').textContent.includes('\"email\": \"n/a\"')")
    row.locator("input.required").check()
    row.locator("input.default").fill("")  # required and missing: the record is rejected, with the reason
    page.wait_for_function("document.getElementById('preview-rejected').textContent.includes('required')")
    row.locator("input.default").fill("n/a")
    page.wait_for_function("document.getElementById('preview-output').textContent.includes('n/a')")
    page.click("#save-mapping")
    page.wait_for_function("document.getElementById('save-status').textContent === 'Saved.'")
    flow_id = flow_url.rstrip("/").rsplit("/", 1)[1]
    status, flow = app.request("GET", f"/api/v1/flows/{flow_id}/")
    assert status == 200
    assert flow["mapping"]["fields"][-1] == {"target": "email", "source": "customer.email", "default": "n/a",
                                             "required": True}
    page.reload()
    saved = page.locator("#targets tr.target-row").nth(2)
    assert saved.locator("input.default").input_value() == "n/a" and saved.locator("input.required").is_checked()
