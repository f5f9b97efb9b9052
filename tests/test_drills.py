"""Fault drills with real processes: the database fails under the Procfile's web process, and a
caller still hears the notice and is put through to FALLBACK_NUMBER within a second.

PostgreSQL is reached through a proxy in this test that can refuse connections or accept them
and never answer; SQLite's write lock is held by another process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from callcenter.directory import service as directory
from tests.conftest import TEST_DATABASE_URL
from tests.processes import Proxy, call_sid, dialled, notice_first, procfile_web, timed_call

pytestmark = pytest.mark.slow

LINE = "+37167000002"
STAFF_PHONE = "+37120000001"
FALLBACK = "+37167000000"
# The caller's bound: Twilio's own wait is 15 s, but a caller hears silence for every second.
WITHIN_SECONDS = 1.0


@pytest.fixture
def directory_with_a_line(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone=STAFF_PHONE)
        directory.add_line(session, LINE, target="staff:jberzins", hours="always")


@pytest.fixture
def process_env(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env, "PYTHONUNBUFFERED": "1"}


def assert_fallback_in_time(base: str) -> None:
    """A few calls, on whatever worker and thread each lands: every one falls back in time."""
    for _ in range(4):
        elapsed, root = timed_call(base, call_sid(), LINE)
        assert dialled(root) == [FALLBACK], root
        assert notice_first(root)
        assert elapsed < WITHIN_SECONDS, f"the caller waited {elapsed:.2f} s"


def assert_routed(base: str) -> None:
    _, root = timed_call(base, call_sid(), LINE)
    assert dialled(root) == [STAFF_PHONE]
    assert notice_first(root)


@pytest.fixture
def proxied(
    database_url: str, process_env: dict[str, str], directory_with_a_line: None, tmp_path: Path
) -> Iterator[tuple[Proxy, str]]:
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL) to put a failing proxy in front of")
    url = make_url(database_url)
    proxy = Proxy(url.port or 5432)
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with procfile_web({**process_env, "DATABASE_URL": through}, tmp_path / "web.log") as base:
            assert_routed(base)
            yield proxy, base
    finally:
        proxy.close()


def test_postgres_refusing_connections_costs_a_caller_under_a_second(
    proxied: tuple[Proxy, str],
) -> None:
    proxy, base = proxied
    proxy.refuse()
    assert_fallback_in_time(base)
    proxy.restore()
    assert_routed(base)


def test_postgres_that_accepts_and_never_answers_costs_a_caller_under_a_second(
    proxied: tuple[Proxy, str], tmp_path: Path
) -> None:
    proxy, base = proxied
    proxy.blackhole()
    assert_fallback_in_time(base)
    proxy.restore()
    # Connections cut off mid-protocol were thrown away: the next calls route as before.
    for _ in range(4):
        assert_routed(base)
    log = (tmp_path / "web.log").read_text()
    failed = [line for line in log.splitlines() if "answered with the fallback" in line]
    # One line per call, naming the cause; the traceback once per outage (per worker).
    assert len(failed) == 4 and all("database" in line for line in failed), failed
    lines = log.splitlines()
    # The calls whose line carries a traceback (a chained one has two "Traceback" headers).
    shown = [
        i
        for i, line in enumerate(lines[:-1])
        if "answered with the fallback" in line and lines[i + 1].startswith("Traceback")
    ]
    assert 1 <= len(shown) <= 2, log


def test_sqlite_write_lock_held_by_another_process_costs_a_caller_under_a_second(
    database_url: str, process_env: dict[str, str], directory_with_a_line: None, tmp_path: Path
) -> None:
    if TEST_DATABASE_URL:
        pytest.skip("SQLite's write lock: the SQLite run has this drill")
    path = make_url(database_url).database
    # Takes the write lock when told to (a line on stdin), holds it until stdin closes.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
            "sys.stdin.readline()\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        with procfile_web(process_env, tmp_path / "web.log") as base:
            assert_routed(base)
            holder.stdin.write("lock\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "locked"
            assert_fallback_in_time(base)
            holder.stdin.close()
            holder.wait(timeout=10)
            assert_routed(base)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
