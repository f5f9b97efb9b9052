"""The retention log for people: filtered, newest first, a page at a time, and its head.

Reading only: the log's one writer is `callcenter.audit.log.append`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from callcenter.audit.models import RetentionEntry


@dataclass(frozen=True)
class LogFilter:
    """Which entries to show: each field narrows the list; None leaves it open."""

    event: str | None = None
    recording_sid: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # excluded


def _narrowed(query: Select[Any], where: LogFilter) -> Select[Any]:
    if where.event is not None:
        query = query.where(RetentionEntry.event == where.event)
    if where.recording_sid is not None:
        query = query.where(RetentionEntry.recording_sid == where.recording_sid)
    if where.actor is not None:
        query = query.where(RetentionEntry.actor == where.actor)
    if where.since is not None:
        query = query.where(RetentionEntry.at >= where.since)
    if where.until is not None:
        query = query.where(RetentionEntry.at < where.until)
    return query


def count(session: Session, where: LogFilter) -> int:
    return int(session.scalar(_narrowed(select(func.count(RetentionEntry.id)), where)) or 0)


def newest_first(
    session: Session, where: LogFilter, *, limit: int, offset: int = 0
) -> list[RetentionEntry]:
    """Return one page of the entries `where` admits, the latest first (by `seq`)."""
    query = _narrowed(select(RetentionEntry), where).order_by(RetentionEntry.seq.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


def head(session: Session) -> str | None:
    """The log's last entry as `SEQ:HASH` (what `retention verify --head` takes), or None."""
    found = session.execute(
        select(RetentionEntry.seq, RetentionEntry.hash).order_by(RetentionEntry.seq.desc()).limit(1)
    ).first()
    return f"{found[0]}:{found[1]}" if found else None
