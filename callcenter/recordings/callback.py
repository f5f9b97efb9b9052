"""The recording-status callback: one pending row per RecordingSid, and nothing else."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.audit import log as retention_log
from callcenter.audit.events import RetentionEvent
from callcenter.calls.models import Call
from callcenter.db import Prepared, is_postgres
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
    created = insert_recording(
        session,
        recording_sid=callback.recording_sid,
        call_sid=callback.call_sid,
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


# Every column a recording row may be inserted with (the rest take their defaults).
_INSERT_COLUMNS = (
    "recording_sid",
    "call_sid",
    "status",
    "started_at",
    "due_at",
    "duration_seconds",
    "channels",
    "source",
    "error_code",
    "last_error",
    "next_attempt_at",
    "created_at",
    "attempts",
    "on_hold",
)


@functools.cache
def _insert_statement(postgres: bool) -> Any:
    """The recording INSERT, built once: every callback binds its values to the same statement.

    Building an INSERT with `.values(...)` per callback cost more than the database's work
    (the webhooks benchmark measures it). The call's id comes from a subquery, not a read before
    the write: on SQLite a transaction that reads first and then writes fails at once (instead
    of waiting) when another writer committed in between. RETURNING says whether this
    statement inserted: rowcount is not dependable on every driver (psycopg reports -1).
    """
    insert = postgresql.insert if postgres else sqlite.insert
    call_id = select(Call.id).where(Call.call_sid == bindparam("lookup_call_sid")).scalar_subquery()
    return (
        insert(Recording)
        .values({**{name: bindparam(name) for name in _INSERT_COLUMNS}, "call_id": call_id})
        .on_conflict_do_nothing(index_elements=["recording_sid"])
        .returning(Recording.id)
    )


# Run on the DB-API cursor (db.Prepared): every recording callback runs it.
_INSERT = {postgres: Prepared(_insert_statement(postgres)) for postgres in (False, True)}


def insert_recording(session: Session, **values: Any) -> bool:
    """Insert a recording row unless its SID exists; tell whether this call inserted it.

    Rules: `values` are columns of _INSERT_COLUMNS; `call_id` is the call whose SID it names.
    """
    params: dict[str, Any] = {**dict.fromkeys(_INSERT_COLUMNS), "attempts": 0, "on_hold": False}
    params.update(values)
    # The call it belongs to, by its SID (none yet: the row keeps its SID to join later).
    params["lookup_call_sid"] = params["call_sid"]
    # Core, not the ORM: the ORM's bulk-insert path costs more than the statement itself.
    return bool(_INSERT[is_postgres(session)].rows(session, params))
