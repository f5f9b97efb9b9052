"""The console in a real browser: Debian's headless Chromium driven by Playwright.

Staff sign in and add an absence with the form; a simulated, signed call then reaches the
substitute; a supervisor finds the call in the log and marks its callback done. Compliance
places and releases a hold and exports the log; a supervisor listens to a recording with a
stated reason and compliance finds the access on the trail page. All of it at
a 390-pixel-wide viewport, with no horizontal overflow and no Content-Security-Policy
violation. Skips without /usr/bin/chromium (never a downloaded browser).
"""

from __future__ import annotations

import io
import math
import struct
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from callcenter.audit.models import RetentionEntry
from callcenter.calls.models import CallbackRequest
from callcenter.directory import service as directory
from tests.calls.conftest import ANDRIS, OFFICE, Twilio, dialled, load_call, sid
from tests.console.conftest import PASSWORD, AddRecording

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
    row.wait_for()
    assert row.count() == 1
    assert "staff:lozola" in row.inner_text()
    no_overflow(page)

    page.click("text=Atzvanīšana")
    item = page.locator("li.callback").first
    # A click starts the navigation and returns: wait for the new page's content.
    item.wait_for()
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


def wait_until(page: Any, expression: str, seconds: float = 10) -> None:
    """Poll an expression (wait_for_function evaluates strings, which the CSP forbids)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(50)


def wav(seconds: float = 2.0, rate: int = 8000) -> bytes:
    """A real WAV (a quiet tone), so that the browser decodes it and reads its duration."""
    frames = b"".join(
        struct.pack("<h", int(2000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(rate)
        target.writeframes(frames)
    return out.getvalue()


def events(sessions: sessionmaker[Session]) -> list[tuple[str, str | None, str]]:
    with sessions() as session:
        rows = session.execute(
            select(
                RetentionEntry.event, RetentionEntry.recording_sid, RetentionEntry.actor
            ).order_by(RetentionEntry.seq)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_hold_placed_and_released_and_the_log_exported(
    server: str,
    browser_page: tuple[Any, list[str]],
    people: dict[str, int],
    add_recording: AddRecording,
    sessions: sessionmaker[Session],
) -> None:
    page, problems = browser_page
    sid = add_recording()
    sign_in(page, server, "audit")
    page.click("nav >> text=Aizturēšana")
    page.fill("#recording_sid", sid)
    page.fill("#reason", "tiesas lieta 2026/14")
    page.click("#hold-form button[type=submit]")
    page.wait_for_selector(f"text=Ieraksts {sid} aizturēts.")
    hold = page.locator(f"li.hold[data-recording-sid='{sid}']")
    assert "Aizturēja audit" in hold.inner_text() and "tiesas lieta 2026/14" in hold.inner_text()
    no_overflow(page)
    hold.locator("input[name=reason]").fill("lieta slēgta")
    hold.locator("button[type=submit]").click()
    page.wait_for_selector("text=Aizturēšana atcelta.")
    assert page.locator("li.hold").count() == 0
    assert [e[0] for e in events(sessions)] == ["stored", "hold_placed", "hold_released"]

    page.click("nav >> text=Glabāšanas žurnāls")
    assert page.locator("table.log tbody tr").first.get_attribute("data-seq") == "3"
    no_overflow(page)
    with page.expect_download() as info:
        page.click("#export-csv")
    exported = open(info.value.path(), encoding="utf-8").read()  # noqa: SIM115
    assert exported.splitlines()[0].startswith("seq,at,event,recording_sid")
    assert len(exported.splitlines()) == 4 and "hold_released" in exported
    assert problems == []


def test_a_supervisor_listens_with_a_reason_and_compliance_finds_it_on_the_trail(
    server: str,
    browser_page: tuple[Any, list[str]],
    people: dict[str, int],
    add_recording: AddRecording,
    sessions: sessionmaker[Session],
) -> None:
    page, problems = browser_page
    sid = add_recording(content=wav())
    audio_requests: list[dict[str, str]] = []
    page.on(
        "request",
        lambda request: (
            audio_requests.append(request.headers) if "/audio/" in request.url else None
        ),
    )
    sign_in(page, server, "boss")
    page.click("nav >> text=Ieraksti")
    page.fill("#sid", sid)
    page.click("#find-form button[type=submit]")
    page.click(f"tr[data-recording-sid='{sid}'] a")
    page.wait_for_selector("#access-form")
    assert page.locator("audio").count() == 0  # no audio before a reason
    page.fill("#reason", "kvalitātes pārbaude, sūdzība 88")
    page.select_option("#purpose", "listen")
    page.click("#access-form button[type=submit]")
    page.wait_for_selector("#player")
    # The access is on the record before the browser asked for a byte.
    assert ("accessed", sid, "boss") in events(sessions)
    wait_until(page, "document.querySelector('#player').readyState >= 1")
    duration = page.evaluate("document.querySelector('#player').duration")
    assert abs(duration - 2.0) < 0.1
    # Seeking: the browser asks for a range of the same address, answered with 206.
    page.evaluate("document.querySelector('#player').currentTime = 1.5")
    wait_until(page, "!document.querySelector('#player').seeking")
    assert audio_requests, "the browser never fetched the audio"
    # Browsers fetch media with Range requests: the stream answered them (206) and played.
    assert any(h.get("range", "").startswith("bytes=") for h in audio_requests)
    assert page.evaluate("document.querySelector('#player').error") is None
    no_overflow(page)

    page.click("text=Iziet")
    page.wait_for_url(server + "/console/login")
    sign_in(page, server, "audit")
    page.click("nav >> text=Noklausīšanās")
    page.fill("#user", "boss")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/console/retention/access?user=boss*")
    row = page.locator(f"table.trail tr[data-recording-sid='{sid}']")
    row.wait_for()
    assert row.count() == 1
    assert "kvalitātes pārbaude, sūdzība 88" in row.inner_text()
    assert "klausīšanās" in row.inner_text()
    no_overflow(page)
    assert problems == []
