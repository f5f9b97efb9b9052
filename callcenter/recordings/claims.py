"""Claims on recording rows: one worker at a time per recording, and what it may write."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from callcenter.adapters.storage import StoredObject
from callcenter.audit import log as retention_log
from callcenter.audit.events import RetentionEvent
from callcenter.audit.models import RetentionEntry
from callcenter.db import is_postgres
from callcenter.recordings.models import Recording
from callcenter.recordings.states import ClaimKind, RecordingStatus

ACTOR = "ingest"

# The columns that say a row is free again: who held it, what kind of claim, until when. Every
# release, ingestion's and the sweep's, writes all three.
UNCLAIMED: dict[str, None] = {"claimed_by": None, "claim_kind": None, "claimed_until": None}


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestPolicy:
    """How long a claim lasts and how retries back off; tests shorten nothing, they move `now`."""

    # Longer than any download should take (50 MB at a slow 1 MB/s is under a minute); a worker
    # that dies holds its rows no longer than this.
    lease: timedelta = timedelta(minutes=15)
    # Media often answers 404 for some seconds after the callback: retry soon, then back off.
    first_retry: timedelta = timedelta(seconds=30)
    # Never give up, but do not hammer Twilio: at worst one attempt an hour.
    max_retry: timedelta = timedelta(hours=1)
    # After this many failed attempts (about an hour with the defaults) compliance is told,
    # once, through the retention log; retrying goes on.
    alert_after_attempts: int = 8

    def backoff(self, attempts: int) -> timedelta:
        """Return the wait after the `attempts`-th failed attempt (1-based)."""
        if attempts <= 1:
            return self.first_retry
        # Capped before multiplying: 2**attempts grows past any timedelta after enough years.
        factor = 2 ** min(attempts - 1, 32)
        return min(self.first_retry * factor, self.max_retry)


DEFAULT_POLICY = IngestPolicy()


@dataclass(frozen=True)
class Claim:
    """A row this worker holds until `claimed_until`, and which step it is for."""

    id: int
    recording_sid: str
    step: str  # "ingest" (download and store) or "provider_delete" (Twilio's copy)
    started_at: datetime
    attempts: int
    storage_key: str | None
    worker: str


def _free(now: datetime) -> Any:
    return or_(Recording.claimed_until.is_(None), Recording.claimed_until <= now)


def _due(now: datetime) -> Any:
    return or_(Recording.next_attempt_at.is_(None), Recording.next_attempt_at <= now)


def _wants_ingest(now: datetime) -> Any:
    # A recording already past its due time is not worth fetching: the retention sweep
    # deletes Twilio's copy of it instead.
    return and_(Recording.status == RecordingStatus.PENDING, Recording.due_at > now)


_WANTS_PROVIDER_DELETE = and_(
    Recording.status == RecordingStatus.STORED, Recording.provider_deleted_at.is_(None)
)


def claim(
    session: Session,
    *,
    worker: str,
    now: datetime,
    policy: IngestPolicy = DEFAULT_POLICY,
    recording_sid: str | None = None,
    kind: ClaimKind = ClaimKind.INGEST,
) -> Claim | None:
    """Claim the next row that needs work (or the one named), or return None.

    Rules: pending rows come before stored rows still waiting for Twilio's copy to go; a row
    is claimable when its next attempt is due and no live lease is on it. The claim is one
    conditional UPDATE (picking its row with FOR UPDATE SKIP LOCKED on PostgreSQL), so two
    workers never hold the same row, on either database.
    """
    for step, wanted in (
        ("ingest", _wants_ingest(now)),
        ("provider_delete", _WANTS_PROVIDER_DELETE),
    ):
        conditions = [wanted, _free(now)]
        if recording_sid is None:
            conditions.append(_due(now))
        else:
            conditions.append(Recording.recording_sid == recording_sid)
        candidate = (
            select(Recording.id)
            .where(*conditions)
            .order_by(Recording.next_attempt_at, Recording.id)
            .limit(1)
        )
        if is_postgres(session):
            candidate = candidate.with_for_update(skip_locked=True)
        row = session.execute(
            update(Recording)
            # The conditions again: on PostgreSQL they are re-checked on the locked row.
            .where(Recording.id == candidate.scalar_subquery(), *conditions)
            .values(
                claimed_by=worker,
                claim_kind=kind,
                claimed_until=now + policy.lease,
                attempts=Recording.attempts + 1,
            )
            .returning(
                Recording.id,
                Recording.recording_sid,
                Recording.started_at,
                Recording.attempts,
                Recording.storage_key,
            )
            .execution_options(synchronize_session=False)
        ).first()
        if row is not None:
            return Claim(row[0], row[1], step, row[2], row[3], row[4], worker)
    return None


def _ours(claimed: Claim) -> Any:
    return and_(Recording.id == claimed.id, Recording.claimed_by == claimed.worker)


def mark_stored(
    session: Session,
    claimed: Claim,
    stored: StoredObject,
    *,
    now: datetime,
    duration_seconds: int | None = None,
    channels: int | None = None,
) -> bool:
    """Record our verified copy and log `stored`; False if the claim was lost meanwhile.

    The claim stays on the row: the same worker goes on to delete Twilio's copy. Attempts start
    again from zero for that step.
    """
    values: dict[str, Any] = {
        "status": RecordingStatus.STORED,
        "storage_key": stored.key,
        "size_bytes": stored.size,
        "sha256": stored.sha256,
        "stored_at": now,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
    }
    # Twilio's callback is the better source; the WAV header fills what it did not say.
    if duration_seconds is not None:
        values["duration_seconds"] = func.coalesce(Recording.duration_seconds, duration_seconds)
    if channels is not None:
        values["channels"] = func.coalesce(Recording.channels, channels)
    result = session.execute(
        update(Recording)
        .where(_ours(claimed), Recording.status == RecordingStatus.PENDING)
        .values(**values)
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return False
    retention_log.append(
        session,
        RetentionEvent.STORED,
        now=now,
        recording_sid=claimed.recording_sid,
        actor=ACTOR,
        details={"key": stored.key, "size": stored.size, "sha256": stored.sha256},
    )
    return True


def mark_provider_deleted(
    session: Session, claimed: Claim, *, existed: bool, now: datetime
) -> bool:
    """Record that Twilio's copy is gone and log it once; release the claim."""
    result = session.execute(
        update(Recording)
        .where(_ours(claimed), Recording.provider_deleted_at.is_(None))
        .values(
            provider_deleted_at=now,
            **UNCLAIMED,
            next_attempt_at=None,
            last_error=None,
        )
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return False
    retention_log.append(
        session,
        RetentionEvent.PROVIDER_COPY_DELETED,
        now=now,
        recording_sid=claimed.recording_sid,
        actor=ACTOR,
        details={"already_gone": not existed},
    )
    return True


def mark_failed(
    session: Session,
    claimed: Claim,
    error: str,
    *,
    now: datetime,
    policy: IngestPolicy = DEFAULT_POLICY,
) -> bool:
    """Record a failed attempt, schedule the next one, release the claim.

    Rules: the wait doubles from `first_retry` up to `max_retry`; after
    `alert_after_attempts` failures of a step, `ingest_failed` is logged once for that step.
    """
    result = session.execute(
        update(Recording)
        .where(_ours(claimed))
        .values(
            attempts=claimed.attempts,
            last_error=error[:500],
            next_attempt_at=now + policy.backoff(claimed.attempts),
            **UNCLAIMED,
        )
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return False
    if claimed.attempts >= policy.alert_after_attempts and not _alerted(session, claimed):
        retention_log.append(
            session,
            RetentionEvent.INGEST_FAILED,
            now=now,
            recording_sid=claimed.recording_sid,
            actor=ACTOR,
            details={"step": claimed.step, "attempts": claimed.attempts, "error": error[:200]},
        )
    return True


def _alerted(session: Session, claimed: Claim) -> bool:
    details = session.scalars(
        select(RetentionEntry.details).where(
            RetentionEntry.recording_sid == claimed.recording_sid,
            RetentionEntry.event == RetentionEvent.INGEST_FAILED,
        )
    )
    return any(d.get("step") == claimed.step for d in details)


def release(session: Session, claimed: Claim) -> None:
    """Give a claim back without counting it as an attempt's outcome."""
    session.execute(
        update(Recording)
        .where(_ours(claimed))
        .values(**UNCLAIMED)
        .execution_options(synchronize_session=False)
    )
