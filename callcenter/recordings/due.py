"""What is due: the recordings that the sweep will delete in the coming days, and those held."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.recordings.models import Recording


@dataclass(frozen=True)
class Upcoming:
    recording_sid: str
    call_sid: str
    due_at: datetime
    status: str
    on_hold: bool


def upcoming(session: Session, *, now: datetime, days: int) -> list[Upcoming]:
    """List recordings not yet deleted that are due within `days` (overdue ones included).

    Rules: ordered by due time; held recordings are listed (with `on_hold`) because they are
    what the sweep will skip.
    """
    if days < 0:
        raise ValueError("days must not be negative")
    rows = session.execute(
        select(
            Recording.recording_sid,
            Recording.call_sid,
            Recording.due_at,
            Recording.status,
            Recording.on_hold,
        )
        .where(Recording.deleted_at.is_(None), Recording.due_at <= now + timedelta(days=days))
        .order_by(Recording.due_at, Recording.id)
    ).all()
    return [Upcoming(*row) for row in rows]
