"""Legal holds: stop a recording's deletion until a hold is released, and log who and why.

A hold is a `legal_holds` row plus `recordings.on_hold`, which the sweep reads through its index
without a join. Placing and releasing are conditional UPDATEs of `on_hold`, so two people doing
the same thing at once get one success and one clear refusal. A recording released after its due
time goes at the next sweep (it is still past due and no longer held).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from callcenter.audit import log as retention_log
from callcenter.audit import notes
from callcenter.audit.events import RetentionEvent
from callcenter.recordings.models import LegalHold, Recording
from callcenter.recordings.states import ClaimKind

# Reasons are kept beside the retention log (callcenter.audit.notes), which holds their hash;
# who acted is a handle. The log is kept for audit far longer than audio.


class HoldError(Exception):
    """A hold or release was refused; the message is one line saying why."""


@dataclass(frozen=True)
class HoldView:
    """An active hold as listed for people."""

    recording_sid: str
    call_sid: str
    reason: str
    placed_by: str
    placed_at: datetime
    due_at: datetime
    status: str


def _clean_reason(reason: str) -> str:
    try:
        return notes.clean_reason(reason)
    except notes.NoteError as exc:
        raise HoldError(str(exc)) from None


def _clean_actor(actor: str) -> str:
    try:
        return notes.handle(actor, what="who places or releases the hold")
    except notes.NoteError as exc:
        raise HoldError(str(exc)) from None


def _recording(session: Session, recording_sid: str) -> Recording:
    recording = session.scalars(
        select(Recording).where(Recording.recording_sid == recording_sid)
    ).one_or_none()
    if recording is None:
        raise HoldError(f"no recording {recording_sid}")
    return recording


def place(
    session: Session, recording_sid: str, *, reason: str, actor: str, now: datetime
) -> LegalHold:
    """Place a legal hold on a recording and log `hold_placed`.

    Rules: the recording must exist, not be deleted and not be held already; the reason is
    required; a recording whose deletion a sweep is running right now cannot be held (the
    deletion may already have removed a copy), which the caller is told.
    """
    reason = _clean_reason(reason)
    actor = _clean_actor(actor)
    recording = _recording(session, recording_sid)
    if recording.deleted_at is not None:
        raise HoldError(f"recording {recording_sid} was deleted on {recording.deleted_at:%Y-%m-%d}")
    if recording.on_hold:
        raise HoldError(f"recording {recording_sid} is already on hold")
    held = session.execute(
        update(Recording)
        .where(
            Recording.id == recording.id,
            Recording.deleted_at.is_(None),
            Recording.on_hold.is_(False),
            or_(
                Recording.claim_kind.is_(None),
                Recording.claim_kind != ClaimKind.SWEEP,
                Recording.claimed_until <= now,
            ),
        )
        .values(on_hold=True)
        .execution_options(synchronize_session=False)
    )
    if held.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(recording)
        if recording.on_hold:
            raise HoldError(f"recording {recording_sid} is already on hold")
        if recording.deleted_at is not None:
            raise HoldError(f"recording {recording_sid} was deleted")
        raise HoldError(f"recording {recording_sid} is being deleted by a running sweep")
    hold = LegalHold(recording_id=recording.id, reason=reason, placed_by=actor, placed_at=now)
    session.add(hold)
    _log(session, RetentionEvent.HOLD_PLACED, hold, recording, actor=actor, reason=reason, now=now)
    return hold


def release(
    session: Session, recording_sid: str, *, reason: str, actor: str, now: datetime
) -> LegalHold:
    """Release a recording's legal hold and log `hold_released`.

    Rules: the recording must be on hold; the reason is required. If it is already past due it
    is deleted at the next sweep.
    """
    reason = _clean_reason(reason)
    actor = _clean_actor(actor)
    recording = _recording(session, recording_sid)
    hold = session.scalars(
        select(LegalHold)
        .where(LegalHold.recording_id == recording.id, LegalHold.released_at.is_(None))
        .order_by(LegalHold.placed_at.desc())
        .limit(1)
    ).one_or_none()
    released = session.execute(
        update(Recording)
        .where(Recording.id == recording.id, Recording.on_hold.is_(True))
        .values(on_hold=False)
        .execution_options(synchronize_session=False)
    )
    if released.rowcount != 1 or hold is None:  # type: ignore[attr-defined]
        raise HoldError(f"recording {recording_sid} is not on hold")
    hold.released_at = now
    hold.released_by = actor
    hold.release_reason = reason
    _log(
        session,
        RetentionEvent.HOLD_RELEASED,
        hold,
        recording,
        actor=actor,
        reason=reason,
        now=now,
        past_due=recording.due_at <= now,
    )
    return hold


def _log(
    session: Session,
    event: RetentionEvent,
    hold: LegalHold,
    recording: Recording,
    *,
    actor: str,
    reason: str,
    now: datetime,
    **more: Any,
) -> None:
    """Append a hold's entry: its id, the reason kept beside the chain, the due time."""
    session.flush()
    retention_log.append(
        session,
        event,
        now=now,
        recording_sid=recording.recording_sid,
        actor=actor,
        details={
            "hold_id": hold.id,
            **notes.reference(notes.keep(session, reason, now=now)),
            "due_at": recording.due_at.isoformat(),
            **more,
        },
    )


def active(session: Session) -> list[HoldView]:
    """List the holds in force, oldest first."""
    rows = session.execute(
        select(LegalHold, Recording)
        .join(Recording, LegalHold.recording_id == Recording.id)
        .where(LegalHold.released_at.is_(None))
        .order_by(LegalHold.placed_at, LegalHold.id)
    ).all()
    return [
        HoldView(
            recording_sid=recording.recording_sid,
            call_sid=recording.call_sid,
            reason=hold.reason,
            placed_by=hold.placed_by,
            placed_at=hold.placed_at,
            due_at=recording.due_at,
            status=recording.status,
        )
        for hold, recording in rows
    ]
