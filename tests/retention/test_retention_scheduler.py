"""The scheduler: its jobs as plain functions, its lease, its wiring, and a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from callcenter.db import transaction
from callcenter.leases import Lease
from callcenter.runtime import Runtime
from retention import scheduler
from tests.fakes.twilio_api import FakeTwilio
from tests.retention.conftest import AddRecording, count_entries, entries, reload

LONG_AGO = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)


def test_sweep_job_deletes_what_is_due(rt: Runtime, add_recording: AddRecording) -> None:
    due = add_recording(LONG_AGO)
    scheduler.sweep_job(rt, NOW)
    assert reload(rt.sessions, due.recording_sid).status == "deleted"


def test_ingest_job_moves_pending_recordings_to_storage(
    rt: Runtime, add_recording: AddRecording
) -> None:
    pending = add_recording(NOW - timedelta(minutes=10), status="pending", twilio_copy=True)
    scheduler.ingest_job(rt, NOW)
    row = reload(rt.sessions, pending.recording_sid)
    assert row.status == "stored"
    assert rt.storage.stat(row.storage_key or "") is not None
    assert count_entries(rt.sessions, "stored", pending.recording_sid) == 1


def test_reconcile_job_finds_recent_recordings_whose_callback_never_came(
    rt: Runtime, twilio: FakeTwilio
) -> None:
    from sqlalchemy import select

    from callcenter.recordings.models import Recording

    now = datetime.now(UTC)
    recent = twilio.add(start_time=now - timedelta(days=2))
    twilio.add(start_time=now - timedelta(days=30))  # before the window: a full pass's job
    scheduler.reconcile_job(rt, now)
    with rt.sessions() as session:
        found = session.scalars(select(Recording.recording_sid)).all()
    assert list(found) == [recent.sid]
    assert twilio.count("GET", "/Recordings.json") >= 1


def test_one_scheduler_holds_the_lease_and_a_second_idles_until_it_expires(
    rt: Runtime,
) -> None:
    first = scheduler.SchedulerLease(rt, "scheduler:first")
    second = scheduler.SchedulerLease(rt, "scheduler:second")
    assert first.renew(NOW)
    assert not second.renew(NOW + timedelta(seconds=1))
    assert first.renew(NOW + scheduler.LEASE_RENEW)
    # The first one stops renewing (it died): the second takes over after the TTL.
    late = NOW + scheduler.LEASE_RENEW + scheduler.LEASE_TTL
    assert not second.renew(late - timedelta(seconds=1))
    assert second.renew(late)
    assert not first.renew(late + timedelta(seconds=1))
    second.release()
    with rt.sessions() as session:
        assert session.scalars(select(Lease)).all() == []


def test_jobs_do_not_run_while_another_scheduler_holds_the_lease(
    rt: Runtime, add_recording: AddRecording
) -> None:
    due = add_recording(LONG_AGO)
    with transaction(rt.sessions) as session:
        session.add(
            Lease(
                name="scheduler",
                holder="scheduler:other",
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
        )
    ran: list[datetime] = []
    job = scheduler.guarded(scheduler.SchedulerLease(rt), "probe", lambda _rt, now: ran.append(now))
    job()
    assert ran == []
    scheduler.guarded(scheduler.SchedulerLease(rt), "sweep", scheduler.sweep_job)()
    assert reload(rt.sessions, due.recording_sid).status == "stored"


def test_the_scheduler_wires_each_job_in_the_line_time_zone(rt: Runtime) -> None:
    import threading

    built = scheduler.build_scheduler(rt, scheduler.SchedulerLease(rt), threading.Event())
    jobs = {job.id: job for job in built.get_jobs()}
    assert set(jobs) == {
        "scheduler-lease",
        "retention-sweep",
        "ingest-recordings",
        "reconcile-recordings",
        "verify-retention",
    }
    assert {f.name: str(f) for f in jobs["verify-retention"].trigger.fields}["hour"] == "4"
    sweep = jobs["retention-sweep"].trigger
    assert isinstance(sweep, CronTrigger)
    assert str(sweep.timezone) == "Europe/Riga"
    assert {f.name: str(f) for f in sweep.fields}["hour"] == "2"
    assert isinstance(jobs["ingest-recordings"].trigger, IntervalTrigger)
    assert jobs["ingest-recordings"].trigger.interval == timedelta(minutes=1)
    assert built._job_defaults == {
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": scheduler.MISFIRE_GRACE_SECONDS,
    }


def _wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _start(env: dict[str, str], rt: Runtime, log: Path) -> subprocess.Popen[bytes]:
    full = {
        **os.environ,
        **env,
        "TWILIO_API_BASE_URL": rt.settings.twilio_api_base_url,
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "callcenter", "scheduler"],
        env=full,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_the_scheduler_process_sweeps_at_start_and_stops_cleanly_on_sigterm(
    env: dict[str, str], rt: Runtime, add_recording: AddRecording, tmp_path: Path
) -> None:
    due = add_recording(LONG_AGO)
    log = tmp_path / "scheduler.log"
    process = _start(env, rt, log)
    try:
        _wait_for(lambda: count_entries(rt.sessions, "sweep_finished") == 1)
        assert reload(rt.sessions, due.recording_sid).status == "deleted"
        with rt.sessions() as session:
            [lease] = session.scalars(select(Lease).where(Lease.name == "scheduler")).all()
            assert lease.holder.startswith("scheduler:")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    output = log.read_text()
    assert code == 0, output
    assert "scheduler stopped" in output
    assert "Traceback" not in output
    with rt.sessions() as session:
        assert session.scalars(select(Lease).where(Lease.name == "scheduler")).all() == []


@pytest.mark.slow
def test_a_second_scheduler_process_idles_and_says_so(
    env: dict[str, str], rt: Runtime, add_recording: AddRecording, tmp_path: Path
) -> None:
    due = add_recording(LONG_AGO)
    with transaction(rt.sessions) as session:
        session.add(
            Lease(
                name="scheduler",
                holder="scheduler:the-first-one",
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
        )
    log = tmp_path / "scheduler.log"
    process = _start(env, rt, log)
    try:
        _wait_for(lambda: "another scheduler holds the lease" in log.read_text())
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()
    assert reload(rt.sessions, due.recording_sid).status == "stored"
    assert [e.event for e in entries(rt.sessions)] == ["stored"]
