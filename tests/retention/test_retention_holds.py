"""Legal holds stop deletion until released; both are logged with who and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from callcenter.audit import notes
from callcenter.audit.models import AuditNote
from callcenter.db import transaction
from callcenter.recordings import holds
from callcenter.recordings import verification as verify_module
from callcenter.recordings.models import LegalHold, Recording
from callcenter.recordings.states import ClaimKind
from callcenter.runtime import Runtime
from retention.sweep import sweep
from tests.retention.conftest import AddRecording, entries, reload

STARTED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
DUE = datetime(2026, 4, 15, 8, 30, tzinfo=UTC)


def place(rt: Runtime, sid: str, reason: str = "Case 2026/17", actor: str = "auditor") -> None:
    with transaction(rt.sessions) as session:
        holds.place(session, sid, reason=reason, actor=actor, now=DUE - timedelta(days=1))


def release(rt: Runtime, sid: str, at: datetime, reason: str = "Case closed") -> None:
    with transaction(rt.sessions) as session:
        holds.release(session, sid, reason=reason, actor="auditor", now=at)


def test_a_held_recording_survives_its_due_time_and_goes_after_release(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    place(rt, recording.recording_sid)
    assert sweep(rt, now=DUE + timedelta(days=10)).held == 1
    assert reload(rt.sessions, recording.recording_sid).status == "stored"

    release(rt, recording.recording_sid, DUE + timedelta(days=20))
    assert sweep(rt, now=DUE + timedelta(days=20, seconds=1)).deleted == 1
    assert reload(rt.sessions, recording.recording_sid).status == "deleted"


def test_a_release_before_the_due_time_waits_for_it(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    place(rt, recording.recording_sid)
    release(rt, recording.recording_sid, DUE - timedelta(hours=1))
    assert sweep(rt, now=DUE - timedelta(seconds=1)).deleted == 0
    assert sweep(rt, now=DUE).deleted == 1


def test_hold_and_release_are_logged_with_who_and_why(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    place(rt, recording.recording_sid, reason="  Case   2026/17  ", actor="jberzins")
    release(rt, recording.recording_sid, DUE + timedelta(days=1))
    [placed] = entries(rt.sessions, "hold_placed")
    [released] = entries(rt.sessions, "hold_released")
    with rt.sessions() as session:
        # The chain holds who (a handle) and the reason's hash; the text is kept beside it.
        assert "reason" not in placed.details and "reason" not in released.details
        placed_reason = notes.text_of(session, placed.details["reason_note"])
        released_reason = notes.text_of(session, released.details["reason_note"])
        assert (placed.actor, placed_reason) == ("jberzins", "Case 2026/17")
        assert (released.actor, released_reason) == ("auditor", "Case closed")
        assert placed.details["reason_sha256"] == notes.digest("Case 2026/17")
        [hold] = session.scalars(select(LegalHold)).all()
        assert hold.released_by == "auditor" and hold.release_reason == "Case closed"
        assert holds.active(session) == []
    assert released.details["past_due"] is True


def test_a_full_name_is_refused_as_who_acted_and_nothing_is_written(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    with pytest.raises(holds.HoldError, match="user handle"), transaction(rt.sessions) as s:
        holds.place(s, recording.recording_sid, reason="Case 1", actor="Jānis Bērziņš", now=DUE)
    assert entries(rt.sessions, "hold_placed") == []


def test_a_redacted_reason_is_reported_as_a_redaction_and_verification_still_passes(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    place(rt, recording.recording_sid, reason="Complaint by a named colleague", actor="jberzins")
    [placed] = entries(rt.sessions, "hold_placed")
    with transaction(rt.sessions) as session:
        notes.redact(
            session, placed.details["reason_note"], by="dpo", why="Lawful request 7", now=DUE
        )
    summary = verify_module.VerifySummary()
    with rt.sessions() as session:
        problems = list(verify_module.verify(session, rt.storage, now=DUE, summary=summary))
        assert notes.text_of(session, placed.details["reason_note"]) is None
    assert problems == []
    assert len(summary.redactions) == 1 and "by dpo" in summary.redactions[0]


def test_an_edited_reason_is_tampering(rt: Runtime, add_recording: AddRecording) -> None:
    recording = add_recording(STARTED)
    place(rt, recording.recording_sid, reason="Case 2026/17", actor="jberzins")
    [placed] = entries(rt.sessions, "hold_placed")
    with transaction(rt.sessions) as session:
        note = session.get_one(AuditNote, placed.details["reason_note"])
        note.text = "Case 2026/18"
    with rt.sessions() as session:
        problems = list(verify_module.verify(session, rt.storage, now=DUE))
    assert [(p.check, p.problem) for p in problems] == [
        ("notes", "text does not match its hash (edited)")
    ]


@pytest.mark.parametrize(
    ("arrange", "sid", "reason", "message"),
    [
        ("none", "RE" + "0" * 32, "x", "no recording"),
        ("held", None, "again", "already on hold"),
        ("deleted", None, "x", "was deleted"),
        ("none", None, "   ", "reason is required"),
        ("none", None, "call back +371 29 123 456", "phone number"),
    ],
)
def test_hold_refusals_say_why(
    rt: Runtime,
    add_recording: AddRecording,
    arrange: str,
    sid: str | None,
    reason: str,
    message: str,
) -> None:
    recording = add_recording(STARTED)
    if arrange == "held":
        place(rt, recording.recording_sid)
    elif arrange == "deleted":
        sweep(rt, now=DUE)
    before = len(entries(rt.sessions))
    with pytest.raises(holds.HoldError, match=message):
        place(rt, sid or recording.recording_sid, reason=reason)
    assert len(entries(rt.sessions)) == before


def test_release_of_a_recording_not_held_is_refused(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    with pytest.raises(holds.HoldError, match="not on hold"):
        release(rt, recording.recording_sid, DUE)
    with pytest.raises(holds.HoldError, match="no recording"):
        release(rt, "RE" + "1" * 32, DUE)


def test_a_recording_a_sweep_is_deleting_cannot_be_held(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    with transaction(rt.sessions) as session:
        row = session.get_one(Recording, recording.id)
        row.claimed_by = "any holder name"
        row.claim_kind = ClaimKind.SWEEP
        row.claimed_until = DUE + timedelta(hours=1)
    with pytest.raises(holds.HoldError, match="being deleted"), transaction(rt.sessions) as s:
        holds.place(s, recording.recording_sid, reason="x", actor="a", now=DUE)
    # Once the claim has lapsed (its sweep died), the hold is allowed.
    with transaction(rt.sessions) as s:
        holds.place(s, recording.recording_sid, reason="x", actor="a", now=DUE + timedelta(hours=2))


def test_a_claim_is_told_by_its_kind_not_by_its_holder_name(
    rt: Runtime, add_recording: AddRecording
) -> None:
    recording = add_recording(STARTED)
    with transaction(rt.sessions) as session:
        row = session.get_one(Recording, recording.id)
        # Named like a sweep, but an ingestion claim: a hold may go on.
        row.claimed_by = "retention-sweep:host:1:abc"
        row.claim_kind = ClaimKind.INGEST
        row.claimed_until = DUE + timedelta(hours=1)
    with transaction(rt.sessions) as s:
        holds.place(s, recording.recording_sid, reason="x", actor="a", now=DUE)


def test_active_holds_are_listed(rt: Runtime, add_recording: AddRecording) -> None:
    first = add_recording(STARTED)
    second = add_recording(STARTED + timedelta(days=1))
    place(rt, first.recording_sid)
    place(rt, second.recording_sid, reason="Complaint 88")
    with rt.sessions() as session:
        listed = holds.active(session)
    assert [(h.recording_sid, h.reason) for h in listed] == [
        (first.recording_sid, "Case 2026/17"),
        (second.recording_sid, "Complaint 88"),
    ]
