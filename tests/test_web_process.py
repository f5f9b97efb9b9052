"""The web process as the Procfile runs it: threads a slow client cannot stall, plain refusals
from gunicorn itself, chunked bodies over the limit refused; `callcenter web` is the same."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker

from callcenter.cli.server import WEB_COMMAND
from callcenter.directory import service as directory
from tests.conftest import PUBLIC_BASE_URL, sign
from tests.processes import (
    call_sid,
    dialled,
    free_port,
    procfile_command,
    procfile_web,
    timed_call,
    voice_form,
)

pytestmark = pytest.mark.slow

LINE = "+37167000002"
STAFF_PHONE = "+37120000001"


@pytest.fixture
def process_env(env: dict[str, str], sessions: sessionmaker[Session]) -> dict[str, str]:
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone=STAFF_PHONE)
        directory.add_line(session, LINE, target="staff:jberzins", hours="always")
    return {**os.environ, **env, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def web(process_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with procfile_web(process_env, tmp_path / "web.log") as base:
        yield base


def test_callcenter_web_is_the_procfiles_web_command() -> None:
    assert shlex.split(procfile_command("web")) == list(WEB_COMMAND)


def test_callcenter_web_serves_like_the_procfile(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "web", "--bind", f"127.0.0.1:{port}"],
        env={**process_env, "WEB_CONCURRENCY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "web.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (
                tmp_path / "web.log"
            ).read_text()
            time.sleep(0.1)
        _, root = timed_call(f"http://127.0.0.1:{port}", call_sid(), LINE)
        assert dialled(root) == [STAFF_PHONE]
        log = (tmp_path / "web.log").read_text()
        assert "Using worker: gthread" in log
    finally:
        server.terminate()
        server.wait(timeout=15)


def half_sent(base: str) -> socket.socket:
    """A client that sends the headers and half the body of a webhook, then goes quiet."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
        + b"CallSid="
        + b"a" * 492
    )
    return sock


def test_slow_clients_do_not_stall_a_real_call(web: str) -> None:
    # Both workers' worth of slow clients, and more: each holds at most one thread.
    slow = [half_sent(web) for _ in range(6)]
    try:
        time.sleep(0.3)
        for _ in range(3):
            elapsed, root = timed_call(web, call_sid(), LINE)
            assert dialled(root) == [STAFF_PHONE]
            assert elapsed < 1.0, f"a real call waited {elapsed:.2f} s behind slow clients"
    finally:
        for sock in slow:
            sock.close()


def test_a_request_line_over_the_limit_gets_a_plain_refusal(web: str) -> None:
    response = requests.post(web + "/twilio/voice?" + "x" * 9000, timeout=10)
    assert response.status_code in (400, 414)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "<html" not in response.text.lower()
    # Under the limit, the app refuses it (unsigned) in plain text too.
    response = requests.post(web + "/twilio/voice?" + "x" * 7000, timeout=10)
    assert (response.status_code, response.headers["Content-Type"][:10]) == (403, "text/plain")


def test_a_chunked_body_over_the_limit_is_refused_with_413(web: str) -> None:
    form = voice_form(call_sid(), LINE)
    body = ("&".join(f"{k}={v}" for k, v in form.items()) + "&Padding=" + "x" * 70_000).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = requests.post(
        web + "/twilio/voice",
        data=chunks(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(PUBLIC_BASE_URL + "/twilio/voice", form),
        },
        timeout=10,
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("text/plain")
