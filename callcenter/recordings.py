"""The recording lifecycle up to storage: callback, ingestion, Twilio's copy, reconciliation.

A recording moves `pending -> stored` (or is closed as `absent` / `failed`). The order of
steps is what keeps every recording safe:

1. the callback stores a pending row (one per RecordingSid) and nothing else;
2. a worker claims the row (a lease on the row, taken by one conditional UPDATE), streams the
   media from Twilio into storage, re-reads it to verify size and SHA-256, and commits
   `stored` together with the `stored` retention log entry;
3. only then, in a later step, Twilio's copy is deleted and `provider_copy_deleted` logged.

A crash between any two steps leaves a row that a later run picks up again: a pending row, or
a stored row whose `provider_deleted_at` is still empty. Twilio's copy is never deleted before
ours is verified, committed, and (on a retry) seen to exist.

Domain functions take a session and never commit; the job functions (`ingest_one`,
`ingest_pending`, `reconcile`) take a session factory and own their short transactions, so no
transaction stays open across a download.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from callcenter import retention_log
from callcenter.db import is_postgres, transaction
from callcenter.models import Call, Recording, RetentionEntry
from callcenter.settings import Settings
from callcenter.storage import Storage, StoredObject
from callcenter.twilio_api import RECORDING_SID, TwilioApi

if TYPE_CHECKING:
    from callcenter.runtime import Runtime

log = logging.getLogger(__name__)

ACTOR = "ingest"
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")

# Twilio's ErrorCode on an `absent` recording, and what it means.
ABSENT_REASONS = {"16101": "too short", "16102": "silent"}

# How many bytes of the media's start are kept to read the WAV header.
_WAV_HEAD_BYTES = 4096


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


def worker_id(kind: str = "ingest") -> str:
    """Return a claim holder name unique to this process and call."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def media_key(recording_sid: str, started_at: datetime) -> str:
    """Return the object key for a recording: its UTC start date and SID, nothing personal."""
    day = started_at.astimezone(UTC)
    return f"recordings/{day:%Y/%m/%d}/{recording_sid}.wav"


# --- the callback ---------------------------------------------------------------------------


def parse_twilio_time(value: str) -> datetime:
    """Parse Twilio's RFC 2822 time (or ISO 8601) into an aware UTC datetime.

    Rules: a time without a zone is taken as UTC, which is how Twilio writes its times; a value
    that is neither format raises ValueError.
    """
    text = value.strip()
    parsed: datetime | None = None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an RFC 2822 or ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Year 9999 at -05:00, or year 1 at +05:00: no instant a datetime can hold.
        raise ValueError(f"not a representable time: {value!r}") from None


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
    from retention.policy import due_at

    status = {"completed": "pending", "absent": "absent", "failed": "failed"}[callback.status]
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
    if created and status == "failed":
        retention_log.append(
            session,
            "ingest_failed",
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


# --- claims ---------------------------------------------------------------------------------


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
    return and_(Recording.status == "pending", Recording.due_at > now)


_WANTS_PROVIDER_DELETE = and_(Recording.status == "stored", Recording.provider_deleted_at.is_(None))


def claim(
    session: Session,
    *,
    worker: str,
    now: datetime,
    policy: IngestPolicy = DEFAULT_POLICY,
    recording_sid: str | None = None,
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
        "status": "stored",
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
        .where(_ours(claimed), Recording.status == "pending")
        .values(**values)
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return False
    retention_log.append(
        session,
        "stored",
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
            claimed_by=None,
            claimed_until=None,
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
        "provider_copy_deleted",
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
            claimed_by=None,
            claimed_until=None,
        )
        .returning(Recording.id)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return False
    if claimed.attempts >= policy.alert_after_attempts and not _alerted(session, claimed):
        retention_log.append(
            session,
            "ingest_failed",
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
            RetentionEntry.event == "ingest_failed",
        )
    )
    return any(d.get("step") == claimed.step for d in details)


def release(session: Session, claimed: Claim) -> None:
    """Give a claim back without counting it as an attempt's outcome."""
    session.execute(
        update(Recording)
        .where(_ours(claimed))
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


# --- ingestion ------------------------------------------------------------------------------


class VerificationFailed(Exception):
    """What storage holds is not what Twilio sent."""


class ClaimLost(Exception):
    """Another worker took the recording over after this worker's lease ran out."""


@dataclass
class IngestReport:
    """What one ingestion run did; SIDs only, nothing personal."""

    stored: list[str] = field(default_factory=list)
    provider_copies_deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    lost_claims: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return len(set(self.stored) | set(self.provider_copies_deleted) | set(self.failed))


class _Clock:
    """`now` as given, advanced by the time that has really passed since (for long batches)."""

    def __init__(self, now: datetime) -> None:
        self._start = now
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)


class _Fixed:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def __call__(self) -> datetime:
        return self._now


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def ingest_one(
    sessions: sessionmaker[Session],
    storage: Storage,
    twilio: TwilioApi,
    claimed: Claim,
    *,
    now: datetime | Callable[[], datetime],
    policy: IngestPolicy = DEFAULT_POLICY,
    report: IngestReport | None = None,
) -> IngestReport:
    """Carry one claimed row as far as it goes: download, verify, store, delete at Twilio."""
    clock = now if callable(now) else _Fixed(now)
    report = report if report is not None else IngestReport()
    sid = claimed.recording_sid
    if claimed.step == "ingest":
        try:
            stored, duration, channels = _download(
                storage, twilio, claimed, still_ours=lambda: _still_claimed(sessions, claimed)
            )
        except Exception as exc:
            error = _describe(exc)
            log.warning(
                "recording %s: ingestion attempt %d failed: %s", sid, claimed.attempts, error
            )
            with transaction(sessions) as session:
                mark_failed(session, claimed, error, now=clock(), policy=policy)
            report.failed[sid] = error
            return report
        with transaction(sessions) as session:
            kept = mark_stored(
                session, claimed, stored, now=clock(), duration_seconds=duration, channels=channels
            )
        if not kept:
            # Another worker took over after our lease ran out; it logs its own copy.
            log.warning("recording %s: claim lost before storing", sid)
            report.lost_claims.append(sid)
            if _settled_without(sessions, claimed):
                # Meanwhile the recording was settled without this copy (the sweep deleted it
                # when it fell due, say): nothing will ever refer to this object, so it must
                # not outlive the row. A copy another worker stored is never touched.
                failed = [o.error for o in storage.delete_all([stored.key]) if o.error is not None]
                if failed:
                    log.error("recording %s: leftover copy not removed: %s", sid, failed[0])
                    report.failed[sid] = "leftover copy not removed; retention verify lists it"
                else:
                    log.warning("recording %s: removed the copy stored after its deletion", sid)
            return report
        report.stored.append(sid)
        log.info("recording %s stored as %s (%d bytes)", sid, stored.key, stored.size)
        key: str | None = stored.key
    else:
        key = claimed.storage_key
        # A retry after a crash: make sure our copy is really there before Twilio's goes.
        if key is None or not storage.exists(key):
            error = "our stored object is missing; Twilio's copy is kept"
            log.error("recording %s: %s", sid, error)
            with transaction(sessions) as session:
                mark_failed(session, claimed, error, now=clock(), policy=policy)
            report.failed[sid] = error
            return report
    try:
        existed = twilio.delete_recording(sid)
    except Exception as exc:
        error = _describe(exc)
        log.warning("recording %s: deleting Twilio's copy failed: %s", sid, error)
        provider_claim = Claim(
            claimed.id, sid, "provider_delete", claimed.started_at,
            claimed.attempts if claimed.step == "provider_delete" else 1, key, claimed.worker,
        )  # fmt: skip
        with transaction(sessions) as session:
            mark_failed(session, provider_claim, error, now=clock(), policy=policy)
        report.failed[sid] = error
        return report
    with transaction(sessions) as session:
        if mark_provider_deleted(session, claimed, existed=existed, now=clock()):
            report.provider_copies_deleted.append(sid)
    return report


def _still_claimed(sessions: sessionmaker[Session], claimed: Claim) -> bool:
    """Tell whether this worker still holds the row and nobody has stored it meanwhile."""
    with sessions() as session:
        return (
            session.scalar(
                select(Recording.id).where(
                    Recording.recording_sid == claimed.recording_sid,
                    Recording.claimed_by == claimed.worker,
                    Recording.status == "pending",
                )
            )
            is not None
        )


def _settled_without(sessions: sessionmaker[Session], claimed: Claim) -> bool:
    """Tell whether the row was deleted or closed, so no stored copy belongs to it."""
    with sessions() as session:
        row = session.execute(
            select(Recording.status, Recording.deleted_at).where(
                Recording.recording_sid == claimed.recording_sid
            )
        ).first()
    return row is None or row.deleted_at is not None or row.status not in ("pending", "stored")


def _download(
    storage: Storage,
    twilio: TwilioApi,
    claimed: Claim,
    *,
    still_ours: Callable[[], bool] = lambda: True,
) -> tuple[StoredObject, int | None, int | None]:
    """Stream the media into storage, verify it, and return it with the WAV's length/channels."""
    key = media_key(claimed.recording_sid, claimed.started_at)
    head = bytearray()

    def sniffed(chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if len(head) < _WAV_HEAD_BYTES:
                head.extend(chunk[: _WAV_HEAD_BYTES - len(head)])
            yield chunk

    with twilio.stream_media(claimed.recording_sid) as media:
        # A slow download can outlive the lease: never write over another worker's copy.
        if not still_ours():
            raise ClaimLost("another worker holds the recording now")
        # A body cut short raises inside put_stream, which then leaves no object behind.
        stored = storage.put_stream(key, sniffed(media.chunks))
    try:
        if media.content_length is not None and stored.size != media.content_length:
            raise VerificationFailed(
                f"stored {stored.size} bytes, Twilio announced {media.content_length}"
            )
        if stored.size == 0:
            raise VerificationFailed("Twilio sent an empty recording")
        again = storage.stat(key)
        if again is None:
            raise VerificationFailed("the object is not there when read back")
        if (again.size, again.sha256) != (stored.size, stored.sha256):
            raise VerificationFailed("the object read back differs from what was sent")
    except VerificationFailed:
        # Nothing refers to this object yet (the row is still pending): remove it. Unless our
        # claim ran out and another worker stored the recording under the same key meanwhile:
        # then the object may be its verified copy, and retention removes any leftover later.
        if still_ours():
            storage.delete_all([key])
        raise
    wav = parse_wav_header(bytes(head))
    duration, channels = wav if wav else (None, None)
    return stored, duration, channels


def parse_wav_header(head: bytes) -> tuple[int, int] | None:
    """Return (whole seconds, channels) from a WAV file's first bytes, or None if unreadable."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    channels = byte_rate = None
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        (size,) = struct.unpack_from("<I", head, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt " and body + 16 <= len(head):
            _fmt, channels, _rate, byte_rate = struct.unpack_from("<HHII", head, body)
        elif chunk_id == b"data":
            if not channels or not byte_rate:
                return None
            return size // byte_rate, channels
        offset = body + size + (size & 1)
    return None


def ingest_pending(
    sessions: sessionmaker[Session],
    storage: Storage,
    twilio: TwilioApi,
    *,
    now: datetime | Callable[[], datetime],
    worker: str | None = None,
    policy: IngestPolicy = DEFAULT_POLICY,
    limit: int | None = None,
) -> IngestReport:
    """Ingest every recording that is due, one claim at a time, until none is left.

    Rules: given a datetime, times advance from `now` by the time really spent, so a long
    batch takes honest leases (a callable is used as the clock as it is). A row that fails is
    scheduled for later and not tried again in the same run.
    """
    worker = worker or worker_id()
    clock = now if callable(now) else _Clock(now)
    report = IngestReport()
    done = 0
    while limit is None or done < limit:
        with transaction(sessions) as session:
            claimed = claim(session, worker=worker, now=clock(), policy=policy)
        if claimed is None:
            break
        ingest_one(sessions, storage, twilio, claimed, now=clock, policy=policy, report=report)
        done += 1
    return report


def ingest(runtime: Runtime, now: datetime, **kwargs: Any) -> IngestReport:
    """Run `ingest_pending` with a runtime's database, storage and Twilio API (for jobs)."""
    return ingest_pending(runtime.sessions, runtime.storage, runtime.twilio, now=now, **kwargs)


# --- reconciliation -------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingObject:
    recording_sid: str
    storage_key: str | None


@dataclass
class ReconcileReport:
    """What reconciliation found and did; SIDs and keys only."""

    listed: int = 0
    created: list[str] = field(default_factory=list)
    provider_copies_deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    missing: list[MissingObject] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


# Rows are looked up and created this many listed recordings at a time.
_RECONCILE_BATCH = 200


def reconcile(
    runtime: Runtime,
    now: datetime,
    *,
    since: date | None = None,
    policy: IngestPolicy = DEFAULT_POLICY,
    worker: str | None = None,
) -> ReconcileReport:
    """Compare Twilio's recording list with the database and storage, and repair what it can.

    Rules: a completed recording Twilio has and we do not becomes a pending row (its callback
    was lost); a recording we hold verified whose Twilio copy was not yet deleted is deleted
    there and logged; a stored row whose object is missing from storage is reported, and
    logged once as `missing_object`. Ingesting the new rows is `ingest_pending`'s job.
    """
    worker = worker or worker_id("reconcile")
    report = ReconcileReport()
    to_delete: list[str] = []
    batch: list[dict[str, Any]] = []
    for item in runtime.twilio.list_recordings(date_created_after=since):
        report.listed += 1
        batch.append(item)
        if len(batch) >= _RECONCILE_BATCH:
            to_delete += _reconcile_batch(runtime, batch, now, report)
            batch = []
    if batch:
        to_delete += _reconcile_batch(runtime, batch, now, report)

    for sid in to_delete:
        with transaction(runtime.sessions) as session:
            claimed = claim(session, worker=worker, now=now, policy=policy, recording_sid=sid)
        if claimed is None or claimed.step != "provider_delete":
            if claimed is not None:
                with transaction(runtime.sessions) as session:
                    release(session, claimed)
            continue  # someone else is on it
        partial = ingest_one(
            runtime.sessions, runtime.storage, runtime.twilio, claimed, now=now, policy=policy
        )
        report.provider_copies_deleted += partial.provider_copies_deleted
        report.failed.update(partial.failed)

    report.missing = find_missing_objects(runtime.sessions, runtime.storage, now=now)
    return report


def _reconcile_batch(
    runtime: Runtime, items: list[dict[str, Any]], now: datetime, report: ReconcileReport
) -> list[str]:
    """Create rows for lost callbacks; return SIDs whose Twilio copy we may delete now."""
    from retention.policy import due_at

    account = runtime.twilio.account_sid
    by_sid: dict[str, dict[str, Any]] = {}
    for item in items:
        sid = str(item.get("sid") or "")
        if not RECORDING_SID.match(sid):
            report.skipped[sid or "?"] = "not a recording SID"
            continue
        if item.get("account_sid") not in (None, account):
            report.skipped[sid] = "another account's recording"
            continue
        by_sid[sid] = item
    to_delete = []
    with runtime.sessions() as session:
        known = {
            row[0]: row
            for row in session.execute(
                select(
                    Recording.recording_sid, Recording.status, Recording.provider_deleted_at
                ).where(Recording.recording_sid.in_(list(by_sid)))
            )
        }
    new_rows = []
    for sid, item in by_sid.items():
        row = known.get(sid)
        if row is not None:
            # Twilio lists metadata for 40 days after the media is deleted: a row whose copy
            # we already deleted is left alone.
            if row[1] == "stored" and row[2] is None and item.get("status") == "completed":
                to_delete.append(sid)
            continue
        if item.get("status") != "completed":
            continue
        try:
            new_rows.append(_row_from_listing(item, now))
        except ValueError as exc:
            report.skipped[sid] = str(exc)
    if not new_rows:
        return to_delete
    # Written in a transaction of its own that starts with the writes (see record_callback);
    # a callback that arrived meanwhile wins harmlessly, the insert ignores its SID.
    with transaction(runtime.sessions) as session:
        for values in new_rows:
            call_id = select(Call.id).where(Call.call_sid == values["call_sid"]).scalar_subquery()
            if insert_recording(
                session,
                **values,
                due_at=due_at(values["started_at"], runtime.settings),
                call_id=call_id,
                status="pending",
                next_attempt_at=now,
                created_at=now,
            ):
                report.created.append(values["recording_sid"])
                log.info(
                    "recording %s: callback never came; queued for ingestion",
                    values["recording_sid"],
                )
    return to_delete


def _row_from_listing(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    raw_start = item.get("start_time") or item.get("date_created")
    if not raw_start:
        raise ValueError("no start_time or date_created")
    call_sid = str(item.get("call_sid") or "")
    if not CALL_SID.match(call_sid):
        raise ValueError("no call_sid")
    return {
        "recording_sid": item["sid"],
        "call_sid": call_sid,
        "started_at": check_start_time(parse_twilio_time(str(raw_start)), now),
        "duration_seconds": _optional_int(item.get("duration")),
        "channels": _optional_int(item.get("channels")),
        "source": (str(item["source"])[:40] if item.get("source") else None),
    }


def _optional_int(value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number >= 0 else None


def find_missing_objects(
    sessions: sessionmaker[Session], storage: Storage, *, now: datetime
) -> list[MissingObject]:
    """Return stored rows whose object is gone from storage; log each once as missing_object."""
    missing = []
    last_id = 0
    while True:
        # Page by id in short read transactions: storage is asked about each row in between.
        with sessions() as session:
            rows = session.execute(
                select(Recording.id, Recording.recording_sid, Recording.storage_key)
                .where(Recording.status == "stored", Recording.id > last_id)
                .order_by(Recording.id)
                .limit(500)
            ).all()
        if not rows:
            break
        for row_id, sid, key in rows:
            last_id = row_id
            if key is None or not storage.exists(key):
                missing.append(MissingObject(sid, key))
    for item in missing:
        with transaction(sessions) as session:
            seen = session.scalar(
                select(RetentionEntry.id).where(
                    RetentionEntry.recording_sid == item.recording_sid,
                    RetentionEntry.event == "missing_object",
                )
            )
            if seen is None:
                retention_log.append(
                    session,
                    "missing_object",
                    now=now,
                    recording_sid=item.recording_sid,
                    actor="reconcile",
                    details={"key": item.storage_key},
                )
    return missing
