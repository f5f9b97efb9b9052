"""The console in a real browser: Debian's headless Chromium driven by Playwright.

Staff sign in and add an absence with the form; a simulated, signed call then reaches the
substitute; a supervisor finds the call in the log and marks its callback done. All of it at
a 390-pixel-wide viewport, with no horizontal overflow and no Content-Security-Policy
violation. Skips without /usr/bin/chromium (never a downloaded browser).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from callcenter.calls.models import CallbackRequest
from callcenter.directory import service as directory
from tests.calls.conftest import ANDRIS, OFFICE, Twilio, dialled, load_call, sid
from tests.console.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    # The browser reaches the test server over plain http on loopback.
    return {**env, "CONSOLE_SECURE_COOKIES": "false"}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    app.config["TESTING"] = False
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser_page() -> Iterator[tuple[Any, list[str]]]:
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844}, locale="lv-LV")
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                problems.append(f"{message.type}: {message.text}")
                if message.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
        page.set_default_timeout(15_000)
        yield page, problems
        context.close()
        browser.close()


def no_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width}px wide at a 390px viewport"


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/console/")
    assert "/console/login" in page.url
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/console/")


def test_staff_add_an_absence_the_call_reaches_the_substitute_the_supervisor_closes_it(
    server: str,
    browser_page: tuple[Any, list[str]],
    people: dict[str, int],
    sessions: sessionmaker[Session],
    phone: Callable[..., Twilio],
    session: Session,
) -> None:
    page, problems = browser_page
    with sessions.begin() as s:
        directory.add_line(s, OFFICE, target="staff:lozola", hours="always")

    sign_in(page, server, "liga")
    assert page.get_attribute("html", "lang") == "lv"
    no_overflow(page)
    page.click("text=Prombūtnes")
    # The runtime's clock says Monday 2 March 2026, 10:00 in Riga.
    page.fill("#start", "2026-03-02T09:00")
    page.fill("#end", "2026-03-06T17:00")
    options = page.eval_on_selector_all("#substitute option", "els => els.map(e => e.value)")
    assert "lozola" not in options and "akalnins" in options  # never oneself
    page.select_option("#substitute", "akalnins")
    page.fill("#note", "komandējums")
    page.click("#absence-form button[type=submit]")
    page.wait_for_selector("text=Prombūtne saglabāta.")
    assert page.locator("table >> text=akalnins").count() >= 1
    no_overflow(page)

    # A call to Līga's line, signed as Twilio signs it, rings her substitute; nobody answers.
    call = phone(line=OFFICE)
    assert dialled(call.start()) == [ANDRIS]
    leg = sid()
    call.status(call.leg_form(leg, ANDRIS, "no-answer"))
    call.dial(call.dial_form("no-answer", leg))
    call.status(call.parent_form("completed"))
    assert load_call(session, call.call_sid).outcome == "no-answer"

    page.click("text=Iziet")
    page.wait_for_url(server + "/console/login")
    sign_in(page, server, "boss")
    page.goto(server + "/console/calls?day=2026-03-02")
    row = page.locator(f"tr[data-call-sid='{call.call_sid}']")
    assert row.count() == 1
    assert "staff:lozola" in row.inner_text()
    no_overflow(page)

    page.click("text=Atzvanīšana")
    item = page.locator("li.callback").first
    assert item.locator("a[href^='tel:']").count() == 1
    item.locator("input[name=note]").fill("atzvanīju, jautājums atrisināts")
    item.locator("button[type=submit]").click()
    page.wait_for_selector("text=Atzīmēts kā izpildīts.")
    session.expire_all()
    request = session.query(CallbackRequest).one()
    assert request.status == "done" and request.note == "atzvanīju, jautājums atrisināts"

    for path in ("/console/", "/console/chart", "/console/directory", "/console/absences"):
        page.goto(server + path)
        no_overflow(page)
    page.goto(server + "/console/chart")
    assert page.locator("img.chart").evaluate("img => img.complete && img.naturalWidth > 0")
    assert problems == []


def test_english_on_request(server: str, browser_page: tuple[Any, list[str]], people: Any) -> None:
    page, problems = browser_page
    page.goto(server + "/console/login?lang=en")
    assert page.get_attribute("html", "lang") == "en"
    assert page.locator("h1").inner_text() == "Sign in"
    assert problems == []
