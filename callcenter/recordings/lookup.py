"""Finding a recording for people: by its Twilio SID, by its call's SID, or by day and line.

What a person sees of a recording: its call, line, times, and whether it is kept, held or
deleted. No caller's phone number: the line is the company's own number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.calls.models import Call
from callcenter.recordings.models import Recording
from callcenter.recordings.states import RecordingStatus

MAX_FOUND = 200


@dataclass(frozen=True)
class RecordingView:
    recording_sid: str
    call_sid: str
    line: str | None
    started_at: datetime
    due_at: datetime
    status: str
    on_hold: bool
    deleted_at: datetime | None
    duration_seconds: int | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None or self.status == RecordingStatus.DELETED

    @property
    def playable(self) -> bool:
        """Whether its audio can be asked for (stored, not deleted)."""
        return self.status == RecordingStatus.STORED and not self.deleted


_COLUMNS = (
    Recording.recording_sid,
    Recording.call_sid,
    Call.to_number,
    Recording.started_at,
    Recording.due_at,
    Recording.status,
    Recording.on_hold,
    Recording.deleted_at,
    Recording.duration_seconds,
)


def find(
    session: Session,
    *,
    sid: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    line: str | None = None,
    limit: int = MAX_FOUND,
) -> list[RecordingView]:
    """Return recordings by SID (a recording's RE… or its call's CA…), time span and line.

    Rules: the latest first; at most `limit`; `until` is excluded; `line` is the number called.
    """
    query = select(*_COLUMNS).outerjoin(Call, Call.call_sid == Recording.call_sid)
    if sid:
        column = Recording.call_sid if sid.startswith("CA") else Recording.recording_sid
        query = query.where(column == sid)
    if since is not None:
        query = query.where(Recording.started_at >= since)
    if until is not None:
        query = query.where(Recording.started_at < until)
    if line:
        query = query.where(Call.to_number == line)
    query = query.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(limit)
    return [RecordingView(*row) for row in session.execute(query)]


def get(session: Session, recording_sid: str) -> RecordingView | None:
    found = find(session, sid=recording_sid, limit=1) if recording_sid.startswith("RE") else []
    return found[0] if found else None
