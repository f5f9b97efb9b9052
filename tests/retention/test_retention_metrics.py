"""The scheduler's work on the web's /metrics, read from the database: a sweep's deletions and
failures, a verification's result, the ingestion backlog and the scheduler lease; the log is
counted incrementally and counted again after a restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import update

from callcenter import leases
from callcenter.app import create_app
from callcenter.db import transaction
from callcenter.recordings import verification as verify
from callcenter.recordings.models import Recording
from callcenter.runtime import Runtime
from retention.sweep import sweep
from tests.fakes.twilio_api import FakeTwilio
from tests.retention.conftest import AddRecording
from tests.retention.test_retention_verify import tamper
from tests.scrape import METRICS_TOKEN, scrape, value

STARTED = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)
DUE = datetime(2026, 4, 15, 8, 30, 0, tzinfo=UTC)
ENTRIES = "callcenter_retention_log_entries_total"


@pytest.fixture
def web(rt: Runtime) -> Flask:
    """The web app on the scheduler's database, at the instant the sweep runs."""
    runtime = Runtime(
        rt.settings.with_overrides(metrics_token=METRICS_TOKEN),
        _engine=rt.engine,
        clock=lambda: DUE + timedelta(hours=1),
    )
    return create_app(runtime=runtime)


def test_a_sweep_moves_deletions_and_failures(
    web: Flask, rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio
) -> None:
    client = web.test_client()
    add_recording(STARTED)
    add_recording(STARTED)
    failing = add_recording(STARTED, twilio_copy=True)
    twilio.fail("delete", failing.recording_sid, status=500)
    before = scrape(client)
    assert value(before, ENTRIES, event="stored") == 3
    assert value(before, ENTRIES, event="deleted") == 0
    assert "callcenter_sweep_last_ok" in before and not before["callcenter_sweep_last_ok"].samples

    report = sweep(rt, now=DUE)
    assert (report.deleted, report.failed) == (2, 1)
    found = scrape(client)
    assert value(found, ENTRIES, event="deleted") == 2
    assert value(found, ENTRIES, event="delete_failed") == 1
    assert value(found, "callcenter_sweep_last_ok") == 0
    assert value(found, "callcenter_sweep_last_recordings", result="deleted") == 2
    assert value(found, "callcenter_sweep_last_recordings", result="failed") == 1
    finished = value(found, "callcenter_sweep_last_finished_timestamp_seconds")
    assert finished is not None and abs(finished - DUE.timestamp()) < 60

    # Twilio recovers: the next run deletes what failed; the counters only grow.
    assert sweep(rt, now=DUE + timedelta(minutes=5)).deleted == 1
    found = scrape(client)
    assert value(found, ENTRIES, event="deleted") == 3
    assert value(found, ENTRIES, event="delete_failed") == 1
    assert value(found, "callcenter_sweep_last_ok") == 1


def test_a_verification_result(web: Flask, rt: Runtime, add_recording: AddRecording) -> None:
    client = web.test_client()
    recording = add_recording(STARTED)
    assert not scrape(client)["callcenter_verification_last_ok"].samples
    at = DUE - timedelta(days=30)
    with transaction(rt.sessions) as session:
        assert verify.run(session, rt.storage, now=at, by="scheduler").ok
    found = scrape(client)
    assert value(found, "callcenter_verification_last_ok") == 1
    assert value(found, "callcenter_verification_last_problems") == 0
    assert value(found, "callcenter_verification_last_run_timestamp_seconds") == at.timestamp()

    # The object goes missing: the next run fails, and says how many problems it found.
    rt.storage.delete_all([recording.storage_key or ""])
    with transaction(rt.sessions) as session:
        run = verify.run(session, rt.storage, now=at + timedelta(hours=1), by="scheduler")
    assert not run.ok
    found = scrape(client)
    assert value(found, "callcenter_verification_last_ok") == 0
    assert (value(found, "callcenter_verification_last_problems") or 0) >= 1


def test_the_ingestion_backlog_and_its_retries(
    web: Flask, rt: Runtime, add_recording: AddRecording
) -> None:
    client = web.test_client()
    assert value(scrape(client), "callcenter_ingestion_backlog") == 0
    waiting = add_recording(STARTED, status="pending")
    add_recording(STARTED, status="pending")
    with transaction(rt.sessions) as session:
        session.execute(
            update(Recording)
            .where(Recording.id == waiting.id)
            .values(attempts=2, created_at=DUE - timedelta(minutes=10))
        )
    found = scrape(client)
    assert value(found, "callcenter_ingestion_backlog") == 2
    assert value(found, "callcenter_ingestion_retrying") == 1
    # The oldest pending is the one created earliest (the other was created just now).
    oldest = value(found, "callcenter_ingestion_oldest_pending_seconds") or 0
    assert oldest >= 70 * 60 - 1


def test_the_scheduler_lease(web: Flask, rt: Runtime) -> None:
    client = web.test_client()
    now = DUE + timedelta(hours=1)
    found = scrape(client)
    assert value(found, "callcenter_scheduler_lease_held") == 0
    assert not found["callcenter_scheduler_lease_expires_in_seconds"].samples
    with transaction(rt.sessions) as session:
        assert leases.acquire(
            session,
            "scheduler",
            "scheduler:host:1:ab",
            now=now - timedelta(seconds=30),
            ttl=timedelta(seconds=120),
        )
    found = scrape(client)
    assert value(found, "callcenter_scheduler_lease_held") == 1
    assert value(found, "callcenter_scheduler_lease_expires_in_seconds") == 90
    # The holder died three minutes ago: the lease shows expired, and by how long.
    with transaction(rt.sessions) as session:
        session.execute(update(leases.Lease).values(expires_at=now - timedelta(minutes=3)))
    found = scrape(client)
    assert value(found, "callcenter_scheduler_lease_held") == 0
    assert value(found, "callcenter_scheduler_lease_expires_in_seconds") == -180


def test_the_log_is_counted_again_when_it_went_back(
    web: Flask, rt: Runtime, add_recording: AddRecording
) -> None:
    client = web.test_client()
    for _ in range(3):
        add_recording(STARTED)
    assert value(scrape(client), ENTRIES, event="stored") == 3
    # An older backup restored: the log is shorter than the last scrape saw.
    tamper(rt.engine, "DELETE FROM retention_log WHERE seq > 1")
    assert value(scrape(client), ENTRIES, event="stored") == 1
