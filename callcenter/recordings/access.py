"""Listening to a recording only with a stated reason, every access on the record.

The order is the rule: the `accessed` entry (who, which purpose, the reason's hash; never a
phone number) is appended and committed before any byte of audio leaves storage. A caller of
`grant` commits, then streams `Access.key` from storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.audit import log as retention_log
from callcenter.audit import notes, search
from callcenter.audit.events import RetentionEvent
from callcenter.recordings.models import Recording
from callcenter.recordings.states import AccessPurpose, RecordingStatus


class AccessRefused(ValueError):
    """Access was refused; the message says why in one line (no reason, deleted, not stored)."""


@dataclass(frozen=True)
class Access:
    """What a granted access may read, and the entry that records it."""

    recording_sid: str
    key: str
    size_bytes: int | None
    purpose: AccessPurpose
    actor: str
    entry_seq: int
    on_hold: bool


def grant(
    session: Session,
    recording_sid: str,
    *,
    actor: str,
    reason: str,
    purpose: str,
    now: datetime,
) -> Access:
    """Record an access to a recording's audio and return where to read it.

    Rules: a reason is required (it is kept beside the log, which holds its hash); who asked
    is a user handle; the purpose is listen or download; a recording that was deleted, or has
    no audio yet, cannot be asked for. A held recording can (holds keep audio, not ears, away).
    """
    try:
        purpose = AccessPurpose(purpose)
    except ValueError:
        raise AccessRefused("the purpose must be listen or download") from None
    try:
        actor = notes.handle(actor, what="who asks")
        text = notes.clean_reason(reason)
    except notes.NoteError as exc:
        raise AccessRefused(str(exc)) from None
    recording = session.scalars(
        select(Recording).where(Recording.recording_sid == recording_sid)
    ).one_or_none()
    if recording is None:
        raise AccessRefused(f"no recording {recording_sid}")
    if recording.deleted_at is not None or recording.status == RecordingStatus.DELETED:
        when = recording.deleted_at
        raise AccessRefused(
            f"recording {recording_sid} was deleted"
            + (f" on {when:%Y-%m-%d}" if when else "")
            + ": its audio is gone"
        )
    if recording.status != RecordingStatus.STORED or not recording.storage_key:
        raise AccessRefused(f"recording {recording_sid} has no stored audio ({recording.status})")
    note = notes.keep(session, text, now=now)
    entry = retention_log.append(
        session,
        RetentionEvent.ACCESSED,
        now=now,
        recording_sid=recording.recording_sid,
        actor=actor,
        details={"purpose": str(purpose), **notes.reference(note)},
    )
    return Access(
        recording.recording_sid,
        recording.storage_key,
        recording.size_bytes,
        purpose,
        actor,
        entry.seq,
        recording.on_hold,
    )


@dataclass(frozen=True)
class AccessRecord:
    """One access as the trail shows it: who, when, which recording, which purpose, why."""

    seq: int
    at: datetime
    actor: str
    recording_sid: str
    purpose: str
    reason: str | None  # None: redacted on a lawful request (its hash stays in the chain)
    recording_deleted: bool
    recording_on_hold: bool


def trail(
    session: Session,
    *,
    actor: str | None = None,
    recording_sid: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[AccessRecord]]:
    """Return how many accesses match and one page of them, the latest first.

    Rules: read from the retention log's `accessed` entries (the record itself, not a copy),
    the reason from the note beside the chain, the recording's state as it is now.
    """
    where = search.LogFilter(
        event=RetentionEvent.ACCESSED, actor=actor or None, recording_sid=recording_sid or None
    )
    total = search.count(session, where)
    page = search.newest_first(session, where, limit=limit, offset=offset)
    sids = {entry.recording_sid for entry in page if entry.recording_sid}
    states = {
        sid: (deleted_at is not None or status == RecordingStatus.DELETED, on_hold)
        for sid, status, deleted_at, on_hold in session.execute(
            select(
                Recording.recording_sid, Recording.status, Recording.deleted_at, Recording.on_hold
            ).where(Recording.recording_sid.in_(sids))
        )
    }
    records = []
    for entry in page:
        details = entry.details or {}
        deleted, held = states.get(entry.recording_sid or "", (True, False))
        records.append(
            AccessRecord(
                seq=entry.seq,
                at=entry.at,
                actor=entry.actor,
                recording_sid=entry.recording_sid or "",
                purpose=str(details.get("purpose", "")),
                reason=notes.text_of(session, details.get("reason_note")),
                recording_deleted=deleted,
                recording_on_hold=held,
            )
        )
    return total, records
