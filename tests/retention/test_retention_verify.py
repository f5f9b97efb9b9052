"""Verification finds every edited, removed or reordered entry and every storage mismatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text, update

from callcenter.audit import log as retention_log
from callcenter.db import transaction
from callcenter.recordings.models import Recording
from callcenter.recordings.verification import VerifySummary, verify
from callcenter.runtime import Runtime
from retention.sweep import sweep
from tests.retention.conftest import AddRecording, new_sid

STARTED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
DUE = datetime(2026, 4, 15, 8, 30, tzinfo=UTC)


def problems(rt: Runtime, now: datetime = DUE, sample: int | None = None) -> list[str]:
    with rt.sessions() as session:
        return [str(m) for m in verify(session, rt.storage, now=now, sample=sample)]


def tamper(engine: Engine, *statements: str) -> None:
    """Run statements on the log as an attacker with the database would: triggers off."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replica mode skips ordinary triggers, for this transaction only.
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            # The test's own copy of the database: the triggers can go.
            connection.execute(text("DROP TRIGGER IF EXISTS retention_log_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS retention_log_no_delete"))
        for statement in statements:
            connection.execute(text(statement))


def edit_row(engine: Engine, sid: str, **values: object) -> None:
    """Change a recording's row behind the service's back (the log stays as it is)."""
    with engine.begin() as connection:
        connection.execute(update(Recording).where(Recording.recording_sid == sid).values(**values))


@pytest.fixture
def history(rt: Runtime, add_recording: AddRecording) -> list[Recording]:
    """Three stored recordings, the first deleted by a sweep: a log of 7 entries."""
    made = [add_recording(STARTED), add_recording(STARTED + timedelta(days=30))]
    made.append(add_recording(STARTED + timedelta(days=40)))
    assert sweep(rt, now=DUE).deleted == 1
    return made


def test_a_consistent_history_verifies_clean(rt: Runtime, history: list[Recording]) -> None:
    summary = VerifySummary()
    with rt.sessions() as session:
        assert list(verify(session, rt.storage, now=DUE, summary=summary)) == []
    assert (summary.entries, summary.stored_checked, summary.deleted_checked) == (7, 2, 1)
    assert problems(rt, sample=1) == []


def test_an_edited_entry_is_found(rt: Runtime, engine: Engine, history: list[Recording]) -> None:
    tamper(engine, "UPDATE retention_log SET actor = 'someone else' WHERE seq = 2")
    assert problems(rt) == ["chain: entry 2: content does not match its hash (edited)"]


def test_an_edited_hash_is_found_at_the_next_entry(
    rt: Runtime, engine: Engine, history: list[Recording]
) -> None:
    tamper(engine, "UPDATE retention_log SET hash = '" + "f" * 64 + "' WHERE seq = 2")
    assert problems(rt) == [
        "chain: entry 2: content does not match its hash (edited)",
        "chain: entry 3: does not link to the entry before it",
    ]


def test_a_removed_entry_is_found(rt: Runtime, engine: Engine, history: list[Recording]) -> None:
    tamper(engine, "DELETE FROM retention_log WHERE seq = 3")
    found = problems(rt)
    assert "chain: entry 4: expected entry 3 here, found 4 (removed or reordered)" in found
    assert "chain: entry 4: does not link to the entry before it" in found


def test_a_removed_last_entry_is_found_through_the_rows(
    rt: Runtime, engine: Engine, history: list[Recording]
) -> None:
    # The tail of a chain can be cut without breaking it; the recordings table still remembers.
    tamper(engine, "DELETE FROM retention_log WHERE event IN ('deleted', 'sweep_finished')")
    deleted_sid = history[0].recording_sid
    assert problems(rt) == [
        f"log: {deleted_sid}: marked deleted but the log has no `deleted` entry"
    ]


def test_reordered_entries_are_found(rt: Runtime, engine: Engine, history: list[Recording]) -> None:
    tamper(
        engine,
        "UPDATE retention_log SET seq = -1 WHERE seq = 2",
        "UPDATE retention_log SET seq = 2 WHERE seq = 3",
        "UPDATE retention_log SET seq = 3 WHERE seq = -1",
    )
    found = problems(rt)
    assert "chain: entry 2: does not link to the entry before it" in found
    assert "chain: entry 3: does not link to the entry before it" in found


def test_a_missing_or_changed_object_is_found(
    rt: Runtime, history: list[Recording], settings_root: Path
) -> None:
    missing, changed = history[1], history[2]
    (settings_root / (missing.storage_key or "")).unlink()
    (settings_root / (changed.storage_key or "")).write_bytes(b"RIFF other audio")
    assert problems(rt) == [
        f"storage: {missing.recording_sid}: kept but its object is missing from storage",
        f"storage: {changed.recording_sid}: object checksum differs from the logged SHA-256",
    ]


def test_an_object_replaced_together_with_its_row_is_still_found(
    rt: Runtime, history: list[Recording], settings_root: Path
) -> None:
    import hashlib

    from sqlalchemy import update

    from callcenter.recordings.models import Recording as Row

    changed = history[2]
    other = b"RIFF other audio"
    (settings_root / (changed.storage_key or "")).write_bytes(other)
    # Whoever swapped the audio also "fixed" the row; the log still vouches for the original.
    with rt.sessions.begin() as session:
        session.execute(
            update(Row)
            .where(Row.id == changed.id)
            .values(sha256=hashlib.sha256(other).hexdigest(), size_bytes=len(other))
        )
    assert problems(rt) == [
        f"storage: {changed.recording_sid}: object checksum differs from the logged SHA-256",
    ]


def test_a_deleted_recording_with_an_object_left_is_found(
    rt: Runtime, history: list[Recording]
) -> None:
    deleted = history[0]
    rt.storage.put_stream(deleted.storage_key or "", [b"came back"])
    assert problems(rt) == [
        f"storage: {deleted.recording_sid}: deleted but 1 object version(s) are left"
    ]


def test_a_deleted_recording_is_checked_at_the_key_the_log_vouches_for(
    rt: Runtime, engine: Engine, history: list[Recording]
) -> None:
    deleted = history[0]
    rt.storage.put_stream(deleted.storage_key or "", [b"came back"])
    # The row's key is edited, so that a check by the row alone would look elsewhere.
    edit_row(engine, deleted.recording_sid, storage_key="recordings/elsewhere.wav")
    assert problems(rt) == [
        f"storage: {deleted.recording_sid}: deleted but 1 object version(s) are left"
    ]


def test_a_kept_recording_relabelled_and_its_audio_removed_is_found(
    rt: Runtime, engine: Engine, history: list[Recording]
) -> None:
    kept = history[1]
    # The row (not the log) is changed, and the audio removed out of band: no row says it
    # should be there any more, but the log does.
    edit_row(engine, kept.recording_sid, status="failed")
    rt.storage.delete_all([kept.storage_key or ""])
    found = problems(rt)
    assert len(found) == 1, found
    assert found[0].startswith(f"log: {kept.recording_sid}: entry ")
    assert "says stored and no entry says deleted, but it is marked failed" in found[0]
    assert found[0].endswith("its object is missing from storage")


def test_anything_kept_a_day_past_due_outside_a_hold_is_found(
    rt: Runtime, add_recording: AddRecording
) -> None:
    kept = add_recording(STARTED)
    add_recording(STARTED, on_hold=True)
    # Within the contract's 24 hours the sweep still has time.
    assert problems(rt, now=DUE + timedelta(hours=24)) == []
    found = problems(rt, now=DUE + timedelta(hours=24, seconds=1))
    assert found == [
        f"overdue: {kept.recording_sid}: due {DUE.isoformat()} and still kept without a hold"
    ]


def test_rows_and_entries_that_disagree_are_found(rt: Runtime, add_recording: AddRecording) -> None:
    recording = add_recording(STARTED)
    ghost = new_sid("RE")
    with transaction(rt.sessions) as session:
        retention_log.append(session, "stored", now=DUE, recording_sid=ghost, actor="ingest")
        retention_log.append(
            session, "deleted", now=DUE, recording_sid=recording.recording_sid, actor="x"
        )
    found = problems(rt)
    assert f"log: {recording.recording_sid}: entry 3 says deleted but the recording is not" in found
    assert f"log: {ghost}: entry 2 says stored but no such recording exists" in found
    with transaction(rt.sessions) as session:
        session.execute(
            update(Recording)
            .where(Recording.id == recording.id)
            .values(status="deleted", deleted_at=DUE)
        )
    assert f"log: {recording.recording_sid}: entry 3 says deleted but the recording is not" not in (
        problems(rt)
    )


@pytest.fixture
def settings_root(rt: Runtime) -> Path:
    return Path(rt.settings.recordings_url[len("file:") :])
