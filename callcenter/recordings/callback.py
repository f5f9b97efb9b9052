"""The recording-status callback: one pending row per RecordingSid, and nothing else."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.audit import log as retention_log
from callcenter.audit.events import RetentionEvent
from callcenter.calls.models import Call
from callcenter.db import is_postgres
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import due_at
from callcenter.recordings.states import RecordingStatus
from callcenter.settings import Settings

log = logging.getLogger(__name__)


# Twilio's ErrorCode on an `absent` recording, and what it means.
ABSENT_REASONS = {"16101": "too short", "16102": "silent"}


# Twilio recorded nothing before this; a start time outside [this, now + a day] is not real.
EARLIEST_START = datetime(2008, 1, 1, tzinfo=UTC)
START_CLOCK_SKEW = timedelta(days=1)


def check_start_time(started_at: datetime, now: datetime) -> datetime:
    """Return a plausible recording start time; raise ValueError otherwise.

    Rules: the retention clock runs from this instant, so an absurd value must not get in: one
    far in the past would make the audio due at once, one far in the future would keep it
    forever (or overflow the calendar arithmetic).
    """
    if not EARLIEST_START <= started_at <= now + START_CLOCK_SKEW:
        raise ValueError(f"start time {started_at.isoformat()} is not plausible")
    return started_at


@dataclass(frozen=True)
class RecordingCallback:
    """A parsed recordingStatusCallback (without `in-progress`, which needs nothing done)."""

    recording_sid: str
    call_sid: str
    status: str  # completed | absent | failed
    started_at: datetime
    duration_seconds: int | None = None
    channels: int | None = None
    source: str | None = None
    error_code: str | None = None


def record_callback(
    session: Session, callback: RecordingCallback, settings: Settings, *, now: datetime
) -> bool:
    """Store the recording Twilio reports; return False when its SID was already known.

    Rules: one row per RecordingSid, whatever the number or order of callbacks (an INSERT that
    ignores a conflict, so even concurrent duplicates are harmless); `completed` becomes
    pending ingestion, `absent` is closed with its reason, `failed` is closed and logged.
    """

    status = {
        "completed": RecordingStatus.PENDING,
        "absent": RecordingStatus.ABSENT,
        "failed": RecordingStatus.FAILED,
    }[callback.status]
    reason: str | None = None
    if callback.status == "absent":
        reason = ABSENT_REASONS.get(callback.error_code or "", "absent")
    elif callback.status == "failed":
        reason = "Twilio reported the recording failed"
    # A subquery, not a read before the write: on SQLite a transaction that reads first and
    # then writes fails at once (instead of waiting) when another writer committed in between.
    call_id = select(Call.id).where(Call.call_sid == callback.call_sid).scalar_subquery()
    created = insert_recording(
        session,
        recording_sid=callback.recording_sid,
        call_sid=callback.call_sid,
        call_id=call_id,
        status=status,
        started_at=callback.started_at,
        due_at=due_at(callback.started_at, settings),
        duration_seconds=callback.duration_seconds,
        channels=callback.channels,
        source=callback.source,
        error_code=callback.error_code,
        last_error=reason,
        next_attempt_at=now,
        created_at=now,
    )
    if created and status == RecordingStatus.FAILED:
        retention_log.append(
            session,
            RetentionEvent.INGEST_FAILED,
            now=now,
            recording_sid=callback.recording_sid,
            actor="twilio",
            details={"step": "record", "error_code": callback.error_code, "reason": reason},
        )
    if created:
        log.info("recording %s reported %s", callback.recording_sid, callback.status)
    return created


def insert_recording(session: Session, **values: Any) -> bool:
    """Insert a recording row unless its SID exists; tell whether this call inserted it."""
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(Recording)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(Recording)
    values.setdefault("attempts", 0)
    values.setdefault("on_hold", False)
    # RETURNING says whether this statement inserted: rowcount is not dependable for an ORM
    # insert on every driver (psycopg reports -1).
    inserted = session.execute(
        statement.values(**values)
        .on_conflict_do_nothing(index_elements=["recording_sid"])
        .returning(Recording.id)
    ).first()
    return inserted is not None
