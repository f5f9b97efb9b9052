"""Reconciliation: lost callbacks recovered, leftover Twilio copies deleted, missing objects
reported; and the `callcenter recordings` commands that drive it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.adapters.storage import LocalStorage
from callcenter.audit.models import RetentionEntry
from callcenter.cli import main
from callcenter.recordings.claims import IngestPolicy
from callcenter.recordings.ingest import ingest_pending
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import due_at, media_key
from callcenter.recordings.reconcile import reconcile
from callcenter.runtime import Runtime
from tests.fakes.twilio_api import FakeTwilio
from tests.recordings.conftest import NOW, PostRecording

FAST = IngestPolicy(alert_after_attempts=3)


def ingest(runtime: Runtime, now: datetime = NOW) -> Any:
    return ingest_pending(
        runtime.sessions, runtime.storage, runtime.twilio, now=lambda: now, policy=FAST
    )


def rows(session: Session) -> dict[str, Recording]:
    session.expire_all()
    return {r.recording_sid: r for r in session.scalars(select(Recording))}


def events(session: Session) -> list[tuple[str, str | None]]:
    session.expire_all()
    query = select(RetentionEntry).order_by(RetentionEntry.seq)
    return [(e.event, e.recording_sid) for e in session.scalars(query)]


def test_recordings_whose_callback_never_came_are_queued_and_then_ingested(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.page_size = 2  # several pages
    lost = [
        # Recent enough to be worth ingesting; late in the day, so they span two dates.
        fake_twilio.add(
            start_time=(NOW - timedelta(days=20)).replace(hour=22, minute=30) + timedelta(hours=i)
        )
        for i in range(5)
    ]
    fake_twilio.add(status="absent", size=44)
    fake_twilio.add(status="in-progress")

    report = reconcile(runtime, NOW)

    assert report.listed == 7
    assert sorted(report.created) == sorted(r.sid for r in lost)
    found = rows(session)
    assert sorted(found) == sorted(r.sid for r in lost)
    for rec in lost:
        row = found[rec.sid]
        assert row.status == "pending"
        assert (row.call_sid, row.started_at) == (rec.call_sid, rec.start_time)
        assert row.due_at == due_at(rec.start_time, runtime.settings)
        assert (row.duration_seconds, row.channels) == (rec.duration, rec.channels)
    assert fake_twilio.count("GET", ".wav") == 0  # reconcile only queues

    stored = ingest(runtime)
    assert sorted(stored.stored) == sorted(r.sid for r in lost)
    assert all(r.media_deleted for r in lost)

    # Twilio still lists deleted recordings (as "deleted") for 40 days: nothing more happens.
    again = reconcile(runtime, NOW + timedelta(hours=1))
    assert (again.created, again.provider_copies_deleted, again.missing) == ([], [], [])
    assert [e for e, _ in events(session)].count("provider_copy_deleted") == 5


def test_listed_recordings_that_make_no_sense_are_skipped_not_stored(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio
) -> None:
    odd = fake_twilio.add(start_time=datetime(2001, 1, 1, tzinfo=UTC))
    no_call = fake_twilio.add(call_sid="")
    report = reconcile(runtime, NOW)
    assert set(report.skipped) == {odd.sid, no_call.sid}
    assert report.created == []
    assert rows(session) == {}


def test_a_recording_known_through_its_callback_is_not_duplicated(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    rec = fake_twilio.add()
    post_recording(rec)
    assert reconcile(runtime, NOW).created == []
    assert list(rows(session)) == [rec.sid]


def test_twilio_copies_we_hold_verified_are_deleted_and_logged(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    rec = fake_twilio.add()
    post_recording(rec)
    fake_twilio.fail("delete", rec.sid, status=500)
    ingest(runtime)
    assert not rec.media_deleted

    # Reconciliation does not wait for the backoff: it deletes what we hold verified.
    report = reconcile(runtime, NOW + timedelta(seconds=5))

    assert report.provider_copies_deleted == [rec.sid]
    assert rec.media_deleted
    assert rows(session)[rec.sid].provider_deleted_at is not None
    assert events(session) == [("stored", rec.sid), ("provider_copy_deleted", rec.sid)]


def test_pending_recordings_are_not_deleted_at_twilio(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    rec = fake_twilio.add()
    post_recording(rec)
    fake_twilio.fail("media", rec.sid, status=404)
    ingest(runtime)
    report = reconcile(runtime, NOW)
    assert report.provider_copies_deleted == []
    assert not rec.media_deleted
    assert fake_twilio.count("DELETE", ".json") == 0


def test_stored_rows_whose_object_is_missing_are_reported_and_logged_once(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    kept, lost = fake_twilio.add(), fake_twilio.add()
    post_recording(kept)
    post_recording(lost)
    ingest(runtime)
    storage = runtime.storage
    assert isinstance(storage, LocalStorage)
    (storage.root / media_key(lost.sid, lost.start_time)).unlink()

    first = reconcile(runtime, NOW)
    second = reconcile(runtime, NOW + timedelta(days=1))

    for report in (first, second):
        assert [(m.recording_sid, m.storage_key) for m in report.missing] == [
            (lost.sid, media_key(lost.sid, lost.start_time))
        ]
    missing_entries = [sid for e, sid in events(session) if e == "missing_object"]
    assert missing_entries == [lost.sid]


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def cli_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's environment as the `callcenter` process would read it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def test_cli_ingest_and_list(
    cli_env: dict[str, str],
    fake_twilio: FakeTwilio,
    post_recording: PostRecording,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rec = fake_twilio.add()
    post_recording(rec)

    assert run(["recordings", "ingest"]) == 0
    assert "stored 1, Twilio copies deleted 1, failed 0" in capsys.readouterr().out

    assert run(["recordings", "list", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert (item["recording_sid"], item["status"], item["provider_deleted"]) == (
        rec.sid,
        "stored",
        True,
    )
    assert item["started_at"].endswith("+02:00")  # local time with its offset


def test_cli_ingest_exits_non_zero_when_a_recording_failed(
    cli_env: dict[str, str],
    fake_twilio: FakeTwilio,
    post_recording: PostRecording,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rec = fake_twilio.add()
    post_recording(rec)
    fake_twilio.fail("media", rec.sid, status=500)
    assert run(["recordings", "ingest"]) != 0
    captured = capsys.readouterr()
    assert "failed 1 (retried later)" in captured.out
    assert "retried later" in captured.err.strip().splitlines()[-1]


def test_cli_reconcile_ingests_lost_callbacks_and_fails_on_missing_objects(
    cli_env: dict[str, str],
    fake_twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rec = fake_twilio.add()

    assert run(["recordings", "reconcile"]) == 0
    out = capsys.readouterr().out
    assert "callbacks missed 1" in out and "ingested 1" in out
    assert rec.media_deleted

    root = Path(cli_env["RECORDINGS_URL"][len("file:") :])
    (root / media_key(rec.sid, rec.start_time)).unlink()
    assert run(["recordings", "reconcile"]) == 1
    captured = capsys.readouterr()
    assert f"missing from storage: {rec.sid}" in captured.out
    assert captured.err.strip() == ("callcenter: 1 stored recording(s) are missing from storage")


def test_cli_reconcile_refuses_a_bad_date(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["recordings", "reconcile", "--since", "last week"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("callcenter: --since") and "\n" not in err


def test_a_tenth_of_the_callbacks_dropped_are_all_recovered_by_reconciliation(
    runtime: Runtime,
    session: Session,
    fake_twilio: FakeTwilio,
    post_recording: PostRecording,
) -> None:
    # Fifty recordings at Twilio; one callback in ten never arrives (Twilio gave up on it).
    made = [fake_twilio.add(start_time=NOW - timedelta(hours=2, minutes=i)) for i in range(50)]
    dropped = {rec.sid for i, rec in enumerate(made) if i % 10 == 3}
    for rec in made:
        if rec.sid not in dropped:
            assert post_recording(rec).status_code == 204
    assert set(rows(session)) == {r.sid for r in made} - dropped

    report = reconcile(runtime, NOW)
    assert set(report.created) == dropped
    stored = ingest(runtime)
    assert sorted(stored.stored) == sorted(r.sid for r in made)
    found = rows(session)
    assert {row.status for row in found.values()} == {"stored"} and len(found) == 50
    # Each stored once, logged once: the recovered ones no differently from the rest.
    logged = [sid for event, sid in events(session) if event == "stored"]
    assert sorted(logged) == sorted(r.sid for r in made)
