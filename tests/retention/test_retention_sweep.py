"""The sweep deletes every copy of what is due, then marks and logs it, exactly once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callcenter import leases
from callcenter.adapters.twilio_api import CredentialsRefused
from callcenter.db import transaction
from callcenter.leases import Lease
from callcenter.recordings.models import Recording
from callcenter.runtime import Runtime
from retention import sweep as sweep_module
from retention.sweep import sweep
from tests.fakes.twilio_api import FakeTwilio
from tests.retention.conftest import (
    AddRecording,
    count_entries,
    delete_requests,
    entries,
    provider_deleted,
    reload,
)

RIGA = ZoneInfo("Europe/Riga")
STARTED = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)
# 11:30 winter time in Riga; three months later it is 11:30 summer time, 08:30 UTC.
DUE = datetime(2026, 4, 15, 8, 30, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_nothing_is_deleted_one_second_before_it_is_due(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    report = sweep(rt, now=DUE - SECOND)
    assert report.deleted == 0
    assert reload(rt.sessions, recording.recording_sid).status == "stored"
    assert rt.storage.versions_left(recording.storage_key or "") == 1
    assert count_entries(rt.sessions, "deleted") == 0


@pytest.mark.parametrize("offset", [timedelta(0), SECOND])
def test_deleted_at_and_one_second_after_its_due_time(
    rt: Runtime, add_recording: AddRecording, offset: timedelta
) -> None:
    recording = add_recording(STARTED)
    report = sweep(rt, now=DUE + offset)
    assert report.deleted == 1
    row = reload(rt.sessions, recording.recording_sid)
    assert row.status == "deleted"
    assert row.deleted_at is not None and row.deleted_at >= DUE
    assert rt.storage.versions_left(recording.storage_key or "") == 0
    [entry] = entries(rt.sessions, "deleted")
    assert entry.recording_sid == recording.recording_sid
    assert entry.details["object_versions_deleted"] == 1
    assert entry.details["sha256"] == recording.sha256


@pytest.mark.parametrize(
    ("started_local", "due_local"),
    [
        # Spring forward (29 March 2026): 03:30 does not exist; due at 04:30 summer time.
        ((2025, 12, 29, 3, 30), "2026-03-29T04:30:00+03:00"),
        # Fall back (25 October 2026): 03:30 happens twice; due at the second.
        ((2026, 7, 25, 3, 30), "2026-10-25T03:30:00+02:00"),
        # 29 February.
        ((2027, 11, 30, 10, 0), "2028-02-29T10:00:00+02:00"),
        ((2028, 11, 30, 10, 0), "2029-02-28T10:00:00+02:00"),
    ],
)
def test_boundaries_on_dst_days_and_month_ends(
    rt: Runtime,
    add_recording: AddRecording,
    started_local: tuple[int, int, int, int, int],
    due_local: str,
) -> None:
    year, month, day, hour, minute = started_local
    recording = add_recording(datetime(year, month, day, hour, minute, tzinfo=RIGA).astimezone(UTC))
    due = datetime.fromisoformat(due_local)
    assert recording.due_at == due
    assert sweep(rt, now=due - SECOND).deleted == 0
    assert reload(rt.sessions, recording.recording_sid).status == "stored"
    assert sweep(rt, now=due).deleted == 1
    assert reload(rt.sessions, recording.recording_sid).status == "deleted"


def test_running_twice_deletes_and_logs_nothing_new(
    rt: Runtime, add_recording: AddRecording
) -> None:
    for hours in range(5):
        add_recording(STARTED + timedelta(hours=hours))
    first = sweep(rt, now=DUE + timedelta(days=1))
    second = sweep(rt, now=DUE + timedelta(days=1))
    assert (first.deleted, second.deleted) == (5, 0)
    assert second.batches == 0
    assert count_entries(rt.sessions, "deleted") == 5
    # Each run says that it ran and what it did.
    finished = entries(rt.sessions, "sweep_finished")
    assert [e.details["deleted"] for e in finished] == [5, 0]
    assert count_entries(rt.sessions, "sweep_started") == 2


def test_batches_follow_the_due_order_and_take_everything_due(
    rt: Runtime, add_recording: AddRecording
) -> None:
    # Several recordings share one due time, to exercise the (due_at, id) keyset tie-break.
    made = [add_recording(STARTED + timedelta(minutes=m // 3)) for m in range(10)]
    not_yet = add_recording(STARTED + timedelta(days=2))
    report = sweep(rt, now=DUE + timedelta(hours=1), batch_size=3)
    assert report.deleted == 10
    assert report.batches == 4
    deleted = [e.recording_sid or "" for e in entries(rt.sessions, "deleted")]
    assert sorted(deleted) == sorted(r.recording_sid for r in made)
    assert reload(rt.sessions, not_yet.recording_sid).status == "stored"


def test_dry_run_lists_and_changes_nothing(rt: Runtime, add_recording: AddRecording) -> None:
    due = add_recording(STARTED)
    add_recording(STARTED, on_hold=True)
    before = len(entries(rt.sessions))
    report = sweep(rt, now=DUE, dry_run=True)
    assert (report.deleted, report.held) == (1, 1)
    assert len(entries(rt.sessions)) == before
    assert reload(rt.sessions, due.recording_sid).status == "stored"
    assert rt.storage.versions_left(due.storage_key or "") == 1


def test_held_recordings_are_skipped_and_reported(rt: Runtime, add_recording: AddRecording) -> None:
    held = add_recording(STARTED, on_hold=True)
    free = add_recording(STARTED)
    report = sweep(rt, now=DUE + timedelta(days=30))
    assert report.deleted == 1
    assert report.held == 1
    assert report.held_sids == [held.recording_sid]
    assert reload(rt.sessions, held.recording_sid).status == "stored"
    assert reload(rt.sessions, free.recording_sid).status == "deleted"
    assert entries(rt.sessions, "sweep_finished")[-1].details["held"] == 1


def test_twilio_copy_is_deleted_before_the_recording_is_marked(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio
) -> None:
    recording = add_recording(STARTED, twilio_copy=True)
    sweep(rt, now=DUE)
    assert provider_deleted(twilio) == {recording.recording_sid}
    row = reload(rt.sessions, recording.recording_sid)
    assert row.status == "deleted" and row.provider_deleted_at is not None
    [entry] = entries(rt.sessions, "deleted")
    assert entry.details["provider_copy"] == "deleted"


def test_twilio_404_counts_as_already_gone(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio
) -> None:
    recording = add_recording(STARTED, twilio_copy=True)
    twilio.recordings[recording.recording_sid].media_deleted = True
    assert sweep(rt, now=DUE).deleted == 1
    [entry] = entries(rt.sessions, "deleted")
    assert entry.details["provider_copy"] == "already gone"
    assert reload(rt.sessions, recording.recording_sid).status == "deleted"


def test_twilio_failure_is_logged_and_retried_at_the_next_run(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio
) -> None:
    recording = add_recording(STARTED, twilio_copy=True)
    twilio.fail("delete", recording.recording_sid, status=500)
    first = sweep(rt, now=DUE)
    assert (first.deleted, first.failed) == (0, 1)
    row = reload(rt.sessions, recording.recording_sid)
    # Our copy went (it was due); the row stays until every copy is gone.
    assert row.status == "stored" and row.deleted_at is None
    assert row.claimed_by is None
    assert "500" in (row.last_error or "")
    [failed] = entries(rt.sessions, "delete_failed")
    assert failed.recording_sid == recording.recording_sid
    assert "provider" in failed.details["error"] and "500" in failed.details["error"]
    assert count_entries(rt.sessions, "deleted") == 0

    second = sweep(rt, now=DUE + timedelta(days=1))
    assert (second.deleted, second.failed) == (1, 0)
    assert provider_deleted(twilio) == {recording.recording_sid}
    assert reload(rt.sessions, recording.recording_sid).status == "deleted"
    assert count_entries(rt.sessions, "deleted", recording.recording_sid) == 1


def test_storage_failure_keeps_the_row_and_records_twilio_progress(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = add_recording(STARTED, twilio_copy=True)
    real = type(rt.storage).delete_all

    def refusing(self: object, keys: list[str]) -> list[object]:
        from callcenter.adapters.storage import DeleteOutcome

        return [DeleteOutcome(key, 0, "AccessDenied: Access Denied") for key in keys]

    monkeypatch.setattr(type(rt.storage), "delete_all", refusing)
    report = sweep(rt, now=DUE)
    assert report.failed == 1
    row = reload(rt.sessions, recording.recording_sid)
    assert row.deleted_at is None and row.provider_deleted_at is not None
    assert count_entries(rt.sessions, "provider_copy_deleted", recording.recording_sid) == 1
    assert "AccessDenied" in entries(rt.sessions, "delete_failed")[0].details["error"]

    monkeypatch.setattr(type(rt.storage), "delete_all", real)
    assert sweep(rt, now=DUE).deleted == 1
    # Twilio was asked once only: the retry knew its copy was gone.
    assert delete_requests(twilio, recording.recording_sid) == 1
    assert rt.storage.versions_left(recording.storage_key or "") == 0


class Crash(BaseException):
    """A process dying: not an Exception, so nothing on the way catches it."""


def crash(*args: object, **kwargs: object) -> None:
    raise Crash


def test_a_crash_between_storage_deletion_and_commit_is_completed_by_the_next_run(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = add_recording(STARTED, twilio_copy=True)
    real_finalise = sweep_module._finalise
    monkeypatch.setattr(sweep_module, "_finalise", crash)
    with pytest.raises(Crash):
        sweep(rt, now=DUE)
    # Every copy is gone but nothing was marked or logged as deleted.
    assert rt.storage.versions_left(recording.storage_key or "") == 0
    assert provider_deleted(twilio) == {recording.recording_sid}
    row = reload(rt.sessions, recording.recording_sid)
    assert row.status == "stored" and row.deleted_at is None
    assert count_entries(rt.sessions, "deleted") == 0

    monkeypatch.setattr(sweep_module, "_finalise", real_finalise)
    # The crashed run's claim lasts CLAIM_TTL; the next daily run is well past it.
    report = sweep(rt, now=DUE + timedelta(days=1))
    assert report.deleted == 1
    row = reload(rt.sessions, recording.recording_sid)
    assert row.status == "deleted"
    [entry] = entries(rt.sessions, "deleted")
    assert entry.details["object_versions_deleted"] == 0
    assert entry.details["provider_copy"] == "already gone"
    assert sweep(rt, now=DUE + timedelta(days=2)).deleted == 0
    assert count_entries(rt.sessions, "deleted") == 1


def test_a_crashed_runs_claims_keep_others_off_until_they_expire(
    rt: Runtime, add_recording: AddRecording, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_recording(STARTED)
    monkeypatch.setattr(sweep_module, "_finalise", crash)
    with pytest.raises(Crash):
        sweep(rt, now=DUE)
    monkeypatch.undo()
    soon = sweep(rt, now=DUE + sweep_module.CLAIM_TTL - SECOND)
    assert (soon.deleted, soon.busy) == (0, 1)
    later = sweep(rt, now=DUE + sweep_module.CLAIM_TTL + SECOND)
    assert later.deleted == 1
    # The log tells when the deletion began (the dead run's intent), then that it was done.
    events = [e.event for e in entries(rt.sessions) if e.recording_sid is not None]
    assert events == ["stored", "delete_started", "delete_started", "deleted"]


def test_a_dead_sweeps_lease_is_taken_over_within_its_ttl(
    rt: Runtime, add_recording: AddRecording
) -> None:
    add_recording(STARTED)
    # A sweep that died holding its lease (SIGKILL: no release, no heartbeat).
    with transaction(rt.sessions) as session:
        assert leases.acquire(
            session, sweep_module.SWEEP_LEASE, "dead", now=DUE, ttl=sweep_module.SWEEP_LEASE_TTL
        )
    assert sweep(rt, now=DUE + sweep_module.SWEEP_LEASE_TTL - SECOND).refused
    assert sweep(rt, now=DUE + sweep_module.SWEEP_LEASE_TTL + SECOND).deleted == 1
    assert timedelta(minutes=2) >= sweep_module.SWEEP_LEASE_TTL


def test_the_heartbeat_keeps_a_live_sweeps_lease_and_claims_through_a_slow_batch(
    rt: Runtime, add_recording: AddRecording, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seconds instead of minutes, so that a batch outlasts the lease many times over.
    monkeypatch.setattr(sweep_module, "SWEEP_LEASE_TTL", timedelta(seconds=0.6))
    monkeypatch.setattr(sweep_module, "CLAIM_TTL", timedelta(seconds=0.6))
    monkeypatch.setattr(sweep_module, "SWEEP_HEARTBEAT", timedelta(seconds=0.1))
    recording = add_recording(STARTED)
    real = type(rt.storage).delete_all
    rivals: list[sweep_module.SweepReport] = []

    def slow(self: object, keys: list[str]) -> object:
        time.sleep(1.5)
        # Mid-batch, long after the first lease would have expired without its heartbeat.
        rivals.append(sweep(rt, now=datetime.now(UTC) + timedelta(days=1)))
        return real(self, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(type(rt.storage), "delete_all", slow)
    # Real time: the heartbeat's clock moves with the wall clock from `now`.
    first = sweep(rt, now=datetime.now(UTC) + timedelta(days=1))
    assert [r.refused for r in rivals] == [True]
    assert first.deleted == 1
    assert [e.recording_sid for e in entries(rt.sessions, "deleted")] == [recording.recording_sid]


def test_pending_recordings_past_due_lose_twilios_copy_and_are_closed(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio
) -> None:
    pending = add_recording(STARTED, status="pending", twilio_copy=True)
    absent = add_recording(STARTED, status="absent")
    report = sweep(rt, now=DUE)
    assert report.deleted == 2
    assert provider_deleted(twilio) == {pending.recording_sid}
    for recording, previous in ((pending, "pending"), (absent, "absent")):
        assert reload(rt.sessions, recording.recording_sid).status == "deleted"
        [entry] = [
            e for e in entries(rt.sessions, "deleted") if e.recording_sid == recording.recording_sid
        ]
        assert entry.details["previous_status"] == previous


def test_a_recording_being_ingested_is_left_for_the_next_run(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED, status="pending", twilio_copy=True)
    with transaction(rt.sessions) as session:
        row = session.scalars(select(Recording).where(Recording.id == recording.id)).one()
        row.claimed_by = "ingest:other"
        row.claimed_until = DUE + timedelta(minutes=5)
    report = sweep(rt, now=DUE)
    assert (report.deleted, report.busy) == (0, 1)
    assert sweep(rt, now=DUE + timedelta(minutes=6)).deleted == 1


def test_a_second_sweep_does_nothing_while_the_lease_is_held(
    rt: Runtime, add_recording: AddRecording
) -> None:
    add_recording(STARTED)
    with transaction(rt.sessions) as session:
        session.add(Lease(name="retention-sweep", holder="other", expires_at=DUE + SECOND * 60))
    report = sweep(rt, now=DUE)
    assert report.refused and report.deleted == 0
    assert [e.event for e in entries(rt.sessions)] == ["stored"]
    # An expired lease is taken over: its holder died.
    report = sweep(rt, now=DUE + timedelta(minutes=2))
    assert report.deleted == 1
    with rt.sessions() as session:
        assert session.scalars(select(Lease)).all() == []


def test_stop_ends_the_run_between_batches(rt: Runtime, add_recording: AddRecording) -> None:
    import threading

    for minute in range(4):
        add_recording(STARTED + timedelta(minutes=minute))
    stop = threading.Event()
    stop.set()
    report = sweep(rt, now=DUE + timedelta(hours=1), batch_size=2, stop=stop)
    assert (report.deleted, report.batches, report.stopped) == (2, 1, True)
    assert entries(rt.sessions, "sweep_finished")[-1].details["stopped"] is True
    assert sweep(rt, now=DUE + timedelta(hours=1)).deleted == 2


def test_storage_is_asked_for_at_most_a_chunk_of_keys_at_a_time(
    rt: Runtime, add_recording: AddRecording, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3 refuses more than 1,000 keys a request; the chunk is made small here to see it work.
    monkeypatch.setattr(sweep_module, "STORAGE_DELETE_CHUNK", 2)
    calls: list[int] = []
    real = type(rt.storage).delete_all

    def counting(self: object, keys: list[str]) -> object:
        calls.append(len(keys))
        return real(self, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(type(rt.storage), "delete_all", counting)
    for minute in range(5):
        add_recording(STARTED + timedelta(minutes=minute))
    assert sweep(rt, now=DUE + timedelta(hours=1), batch_size=5).deleted == 5
    assert calls == [2, 2, 1]


def test_twilio_refusing_the_token_stops_the_sweep_as_a_setting_problem_and_loses_nothing(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio
) -> None:
    recording = add_recording(STARTED, twilio_copy=True)
    twilio.auth_token = "rotated-at-twilio"  # ours no longer matches
    with pytest.raises(CredentialsRefused, match="TWILIO_AUTH_TOKEN"):
        sweep(rt, now=DUE)
    # Not logged as this recording's failure: the run stopped on the setting.
    assert entries(rt.sessions, "delete_failed") == []
    assert [e.event for e in entries(rt.sessions) if e.recording_sid] == [
        "stored",
        "delete_started",
    ]
    twilio.auth_token = rt.settings.twilio_auth_token or ""
    later = sweep(rt, now=DUE + sweep_module.CLAIM_TTL + SECOND)
    assert later.deleted == 1
    assert provider_deleted(twilio) == {recording.recording_sid}
