"""Fault drills for retention, with real processes: a sweep killed mid-run, then started again.

The promise is what survives a crash: no recording both gone from storage and marked kept, no
duplicate log entry, and `retention verify` passing once a later run has finished the work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.recordings.models import Recording
from callcenter.runtime import Runtime
from retention import sweep as sweep_module
from retention.sweep import sweep
from tests.cli import run as run_cli
from tests.retention.conftest import AddRecording, count_entries, entries

pytestmark = pytest.mark.slow

LONG_AGO = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
RECORDINGS = 1_000

# The sweep as the scheduler runs it, in a process of its own that the test can kill.
SWEEPER = textwrap.dedent(
    """
    from datetime import datetime, UTC
    from callcenter.runtime import Runtime
    from callcenter.settings import load
    from retention.sweep import sweep

    sweep(Runtime(load()), now=datetime.now(UTC), batch_size=25)
    """
)


def _wait_for(check: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_sweep_killed_mid_run_is_finished_by_the_next_one_and_verifies(
    rt: Runtime,
    add_recording: AddRecording,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = [add_recording(LONG_AGO + timedelta(seconds=n)) for n in range(RECORDINGS)]
    process_env = {
        **os.environ,
        **env,
        "TWILIO_API_BASE_URL": rt.settings.twilio_api_base_url,
        "LOG_LEVEL": "WARNING",
    }
    sweeper = subprocess.Popen(
        [sys.executable, "-c", SWEEPER],
        env=process_env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "sweeper.log").open("w"),
    )
    try:
        # Kill it while it is deleting: some recordings done, most not yet begun.
        _wait_for(
            lambda: count_entries(rt.sessions, "deleted") >= 100 or sweeper.poll() is not None
        )
        assert sweeper.poll() is None, (tmp_path / "sweeper.log").read_text()
        sweeper.send_signal(signal.SIGKILL)
        sweeper.wait(10)
    finally:
        if sweeper.poll() is None:
            sweeper.kill()
    done_before = count_entries(rt.sessions, "deleted")
    assert 100 <= done_before < RECORDINGS

    # The next run, started after the dead one's lease and claims have lapsed (no heartbeat).
    later = datetime.now(UTC) + sweep_module.SWEEP_LEASE_TTL + timedelta(seconds=1)
    report = sweep(rt, now=later)
    assert not report.refused
    assert report.deleted == RECORDINGS - done_before

    # Every recording gone everywhere, each logged `deleted` exactly once, after its intent.
    with rt.sessions() as session:
        statuses = dict(
            session.execute(select(Recording.status, func.count()).group_by(Recording.status)).all()
        )
    assert statuses == {"deleted": RECORDINGS}
    assert all(rt.storage.versions_left(r.storage_key or "") == 0 for r in made)
    log = entries(rt.sessions)
    deleted = Counter(e.recording_sid for e in log if e.event == "deleted")
    assert set(deleted.values()) == {1} and len(deleted) == RECORDINGS
    first_intent: dict[str, int] = {}
    for entry in log:
        if entry.event == "delete_started":
            first_intent.setdefault(entry.recording_sid or "", entry.seq)
    assert all(first_intent[e.recording_sid or ""] < e.seq for e in log if e.event == "deleted")

    cli_env = {**env, "TWILIO_API_BASE_URL": rt.settings.twilio_api_base_url}
    verified = run_cli(capsys, monkeypatch, cli_env, "retention", "verify", "--by", "drill")
    assert verified.code == 0, verified.out + verified.err
