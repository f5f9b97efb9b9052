"""The retention sweep: delete the audio that is due, everywhere it is kept, provably.

How one run goes:
1. Take the `retention-sweep` lease (a conditional UPDATE/INSERT in `leases`) and, on
   PostgreSQL, a session advisory lock; if either is held elsewhere, do nothing and say so.
2. Append `sweep_started`.
3. Read what is due (`deleted_at IS NULL AND due_at <= now`) through the partial index
   `ix_recordings_due`, in batches ordered by (due_at, id) with keyset pagination, so the cost
   follows what is due and memory follows the batch size, not what is kept.
4. For each batch: skip and count recordings under legal hold; claim the rest with a conditional
   UPDATE (`claimed_by`/`claimed_until`, the same claim ingestion uses, so a recording being
   ingested is left alone and a hold cannot be placed while its deletion runs; `claim_kind`
   says it is the sweep's); append `delete_started` for each and commit; delete the stored
   object with all its versions (`storage.delete_all`, at most 1,000 keys per call, per-key
   errors read) and Twilio's copy when it may still be there (404 means already gone).
5. ONLY THEN, in one transaction per batch, mark each recording whose every copy is gone
   (`status='deleted'`, `deleted_at`) and append its `deleted` entry; each failure appends
   `delete_failed` with its error and is retried at the next run.
6. Append `sweep_finished` with the counts and give the lease back.

The lease and the claims last SWEEP_LEASE_TTL (90 s) and a heartbeat renews them while the run
lives, so a sweep killed mid-run blocks the next one for at most that long.

A crash anywhere leaves either nothing or a retry: storage deletion is idempotent (a key with no
versions left deletes as "0 versions, no error") and Twilio's 404 counts as already gone, so the
next run completes the recording and logs exactly one `deleted`. Two runs at once cannot delete
or log anything twice: the lease and the advisory lock keep the second out, and the marking
UPDATE is conditional on our claim and `deleted_at IS NULL`, so even without them only one
transaction can mark a recording and append its entry.

Every row past due is handled, not only stored ones, because every row left behind would be
read again by every later run: a `pending` recording never ingested still has Twilio's copy,
which must go; `absent`/`failed` rows have no audio of ours but may have a Twilio resource. All
of them end as `deleted` with one `deleted` entry, which also makes "every due row has a
`deleted` entry" a simple check for `verify`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from callcenter import leases
from callcenter.adapters.twilio_api import CredentialsRefused
from callcenter.audit import log as retention_log
from callcenter.audit.events import RetentionEvent
from callcenter.db import is_postgres, transaction
from callcenter.recordings.claims import UNCLAIMED
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import media_key
from callcenter.recordings.states import ClaimKind, RecordingStatus
from callcenter.runtime import Runtime

log = logging.getLogger(__name__)

# Recordings read, claimed and finalised together. One batch is one storage call (S3 allows
# 1,000 keys a request) and one short write transaction; memory is bounded by it.
DEFAULT_BATCH_SIZE = 1_000
# S3 DeleteObjects takes at most 1,000 keys a request; we never hand the adapter more at once.
STORAGE_DELETE_CHUNK = 1_000
# A heartbeat renews the sweep's lease and its claims every SWEEP_HEARTBEAT while it runs, so a
# sweep that died (SIGKILL, a lost machine) loses both within SWEEP_LEASE_TTL and the next run
# may go on; a live one, however slow a batch, never loses them.
SWEEP_HEARTBEAT = timedelta(seconds=20)
SWEEP_LEASE_TTL = timedelta(seconds=90)
SWEEP_LEASE = "retention-sweep"
# A claim on a recording lives exactly as long as the lease that took it.
CLAIM_TTL = SWEEP_LEASE_TTL
# Session-level advisory lock key on PostgreSQL ("RSWP"): a second guard beside the lease.
SWEEP_ADVISORY_LOCK_KEY = 0x52535750
# Error texts kept in the log are cut here; the full error goes to the process log.
MAX_ERROR_CHARS = 500
# Held recordings named in a report; the count is always complete.
MAX_LISTED = 1_000

ACTOR = "retention-sweep"


@dataclass(frozen=True)
class DueRecording:
    """A recording past its due time, as the sweep reads it."""

    id: int
    recording_sid: str
    status: str
    due_at: datetime
    storage_key: str | None
    provider_deleted_at: datetime | None
    on_hold: bool
    sha256: str | None
    started_at: datetime

    @property
    def object_key(self) -> str:
        """Where its audio is, or would be: a row never marked stored may still have left an
        object behind (a crash between upload and commit), so that key is deleted too."""
        return self.storage_key or media_key(self.recording_sid, self.started_at)


# The columns of a DueRecording, in its field order.
_DUE_COLUMNS = (
    Recording.id,
    Recording.recording_sid,
    Recording.status,
    Recording.due_at,
    Recording.storage_key,
    Recording.provider_deleted_at,
    Recording.on_hold,
    Recording.sha256,
    Recording.started_at,
)


@dataclass
class SweepReport:
    """What one run did (or, in a dry run, would do)."""

    dry_run: bool
    deleted: int = 0
    failed: int = 0
    held: int = 0
    # Due but being ingested (claimed by another job) at the time: retried next run.
    busy: int = 0
    batches: int = 0
    # Another sweep held the lease: this run did nothing.
    refused: bool = False
    stopped: bool = False
    held_sids: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "deleted": self.deleted,
            "failed": self.failed,
            "held": self.held,
            "busy": self.busy,
            "batches": self.batches,
        }


def due_batches(
    session: Session, *, now: datetime, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[list[DueRecording]]:
    """Yield the recordings due at `now`, oldest due first, a batch at a time.

    Rules: only rows not yet deleted with `due_at <= now` (nothing before it is due); keyset
    pagination on (due_at, id) through `ix_recordings_due`, never OFFSET, so each batch costs the
    same however many rows are kept.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    after: tuple[datetime, int] | None = None
    while True:
        query = (
            select(*_DUE_COLUMNS)
            .where(Recording.deleted_at.is_(None), Recording.due_at <= now)
            .order_by(Recording.due_at, Recording.id)
            .limit(batch_size)
        )
        if after is not None:
            last_due, last_id = after
            # Written as a range on due_at plus a tie-break so both databases use the index.
            query = query.where(
                Recording.due_at >= last_due,
                or_(
                    Recording.due_at > last_due,
                    and_(Recording.due_at == last_due, Recording.id > last_id),
                ),
            )
        batch = [DueRecording(*row) for row in session.execute(query)]
        if not batch:
            return
        yield batch
        after = (batch[-1].due_at, batch[-1].id)
        if len(batch) < batch_size:
            return


@dataclass
class _Outcome:
    """What happened to one claimed recording's copies in this run."""

    row: DueRecording
    versions_deleted: int = 0
    provider: str = "deleted earlier"
    provider_deleted_now: bool = False
    errors: list[str] = field(default_factory=list)


class _Clock:
    """The injected `now`, advanced by the real time elapsed since the run began.

    `now` decides what is due and is fixed for the run; leases, claims and entry times need a
    clock that moves, and in production this is the wall clock.
    """

    def __init__(self, now: datetime) -> None:
        self._start = now
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)


def sweep(
    runtime: Runtime,
    *,
    now: datetime,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> SweepReport:
    """Delete every copy of the audio due at `now`, then mark and log each deletion.

    Rules: see the module docstring. A dry run reads what is due and held, counts it, and
    writes nothing at all (no lease, no log entry). `stop`, when set, ends the run cleanly
    between batches (the scheduler sets it on SIGTERM).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    report = SweepReport(dry_run=dry_run)
    if dry_run:
        with runtime.sessions() as session:
            for batch in due_batches(session, now=now, batch_size=batch_size):
                report.batches += 1
                for row in batch:
                    if row.on_hold:
                        _note_held(report, row)
                    else:
                        report.deleted += 1
        return report

    clock = _Clock(now)
    # The holder id names the sweep for people reading the table; rules ask claim_kind.
    holder = leases.holder_id(ClaimKind.SWEEP)
    with _exclusive(runtime, holder, clock) as ours:
        if not ours:
            report.refused = True
            log.warning("retention sweep: another sweep is running; this one does nothing")
            return report
        with transaction(runtime.sessions) as session:
            retention_log.append(
                session,
                RetentionEvent.SWEEP_STARTED,
                now=clock(),
                actor=ACTOR,
                details={"due_before": now.isoformat(), "batch_size": batch_size},
            )
        try:
            _run_batches(
                runtime,
                report,
                now=now,
                clock=clock,
                holder=holder,
                batch_size=batch_size,
                stop=stop,
            )
        finally:
            # Written even when a batch raised, so the log shows how far the run got; the
            # exception still propagates to the caller.
            with transaction(runtime.sessions) as session:
                retention_log.append(
                    session,
                    RetentionEvent.SWEEP_FINISHED,
                    now=clock(),
                    actor=ACTOR,
                    details={**report.counts(), "stopped": report.stopped},
                )
    log.info("retention sweep: %s", report.counts())
    return report


def _run_batches(
    runtime: Runtime,
    report: SweepReport,
    *,
    now: datetime,
    clock: Callable[[], datetime],
    holder: str,
    batch_size: int,
    stop: threading.Event | None,
) -> None:
    with runtime.sessions() as reader, _Heartbeat(runtime, holder, clock) as heartbeat:
        for batch in due_batches(reader, now=now, batch_size=batch_size):
            # The reader holds no locks between batches (SQLite would otherwise keep a read
            # snapshot open for the whole run).
            reader.rollback()
            report.batches += 1
            _sweep_batch(runtime, report, batch, clock=clock, holder=holder)
            if not heartbeat.beat():
                raise RuntimeError("retention sweep lost its lease; stopping")
            if stop is not None and stop.is_set():
                report.stopped = True
                log.info("retention sweep: asked to stop; the rest waits for the next run")
                return


def _sweep_batch(
    runtime: Runtime,
    report: SweepReport,
    batch: Sequence[DueRecording],
    *,
    clock: Callable[[], datetime],
    holder: str,
) -> None:
    """Claim, delete every copy, then mark and log one batch."""
    for row in batch:
        if row.on_hold:
            _note_held(report, row)
    candidates = [row for row in batch if not row.on_hold]
    if not candidates:
        return
    claimed = _claim(runtime, candidates, clock=clock, holder=holder)
    report.busy += len(candidates) - len(claimed)
    if not claimed:
        return
    outcomes = {row.id: _Outcome(row) for row in claimed}
    _log_intent(runtime, claimed, clock=clock)
    _delete_stored_objects(runtime, outcomes)
    _delete_provider_copies(runtime, outcomes)
    _finalise(runtime, report, outcomes, clock=clock, holder=holder)


def _claim(
    runtime: Runtime,
    rows: Sequence[DueRecording],
    *,
    clock: Callable[[], datetime],
    holder: str,
) -> list[DueRecording]:
    """Claim the rows nobody else is working on and that are still unheld and undeleted."""
    ids = [row.id for row in rows]
    at = clock()
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Recording)
            .where(
                Recording.id.in_(ids),
                Recording.deleted_at.is_(None),
                Recording.on_hold.is_(False),
                or_(Recording.claimed_until.is_(None), Recording.claimed_until <= at),
            )
            .values(claimed_by=holder, claim_kind=ClaimKind.SWEEP, claimed_until=at + CLAIM_TTL)
            .execution_options(synchronize_session=False)
        )
        # Re-read the rows as claimed: a hold or an ingestion may have changed them since.
        claimed = session.execute(
            select(*_DUE_COLUMNS).where(Recording.id.in_(ids), Recording.claimed_by == holder)
        ).all()
    by_id = {row[0]: DueRecording(*row) for row in claimed}
    return [by_id[row.id] for row in rows if row.id in by_id]


def _log_intent(
    runtime: Runtime, rows: Sequence[DueRecording], *, clock: Callable[[], datetime]
) -> None:
    """Append `delete_started` for each claimed row, committed before storage is touched.

    Then the log tells when each deletion began even across a crash: the `deleted` that a
    later run writes (with no versions left to delete) follows this entry.
    """
    at = clock()
    with transaction(runtime.sessions) as session:
        retention_log.append_many(
            session,
            [
                retention_log.NewEntry(
                    RetentionEvent.DELETE_STARTED,
                    at,
                    row.recording_sid,
                    ACTOR,
                    {"due_at": row.due_at.isoformat(), "object_key": row.object_key},
                )
                for row in rows
            ],
        )


def _delete_stored_objects(runtime: Runtime, outcomes: dict[int, _Outcome]) -> None:
    """Delete every version of each stored object; record per-key errors on their recording."""
    by_key: dict[str, list[_Outcome]] = {}
    for outcome in outcomes.values():
        by_key.setdefault(outcome.row.object_key, []).append(outcome)
    keys = list(by_key)
    for start in range(0, len(keys), STORAGE_DELETE_CHUNK):
        chunk = keys[start : start + STORAGE_DELETE_CHUNK]
        try:
            results = runtime.storage.delete_all(chunk)
        except Exception as exc:
            log.warning("retention sweep: storage deletion failed: %s", exc, exc_info=True)
            for key in chunk:
                for outcome in by_key[key]:
                    outcome.errors.append(f"storage: {_describe(exc)}")
            continue
        reported = {result.key: result for result in results}
        for key in chunk:
            result = reported.get(key)
            for outcome in by_key[key]:
                if result is None:
                    # An adapter that forgets a key has not proven it gone.
                    outcome.errors.append("storage: no result reported for the object")
                elif result.error is not None:
                    outcome.errors.append(f"storage: {result.error}")
                else:
                    outcome.versions_deleted = result.versions_deleted


def _delete_provider_copies(runtime: Runtime, outcomes: dict[int, _Outcome]) -> None:
    """Delete Twilio's copy of each recording that may still have one (404: already gone)."""
    for outcome in outcomes.values():
        if outcome.row.provider_deleted_at is not None:
            continue
        try:
            existed = runtime.twilio.delete_recording(outcome.row.recording_sid)
        except CredentialsRefused:
            # A setting problem, not this recording's: stop the run (one line, from the job).
            # The batch's claims lapse and its `delete_started` entries stand; the next run,
            # with the token fixed, finishes it.
            raise
        except Exception as exc:
            log.warning(
                "retention sweep: Twilio deletion of %s failed: %s",
                outcome.row.recording_sid,
                exc,
            )
            outcome.errors.append(f"provider: {_describe(exc)}")
            continue
        outcome.provider = "deleted" if existed else "already gone"
        outcome.provider_deleted_now = True


def _finalise(
    runtime: Runtime,
    report: SweepReport,
    outcomes: dict[int, _Outcome],
    *,
    clock: Callable[[], datetime],
    holder: str,
) -> None:
    """Mark and log every outcome of a batch in one transaction.

    Rules: a recording is marked deleted only if every copy went, and only by the run that
    claimed it (`claimed_by`) and only once (`deleted_at IS NULL`); its `deleted` entry is
    appended for exactly the rows that UPDATE changed (RETURNING), in the same transaction.
    """
    at = clock()
    done = [o for o in outcomes.values() if not o.errors]
    failed = [o for o in outcomes.values() if o.errors]
    new_entries: list[retention_log.NewEntry] = []
    with transaction(runtime.sessions) as session:
        for outcome in failed:
            row = outcome.row
            error = "; ".join(outcome.errors)[:MAX_ERROR_CHARS]
            values: dict[str, Any] = {
                "last_error": error,
                **UNCLAIMED,
            }
            if outcome.provider_deleted_now:
                # Twilio's copy went even though another copy did not: remember it, so the
                # retry does not depend on Twilio still answering 404.
                values["provider_deleted_at"] = at
                new_entries.append(
                    retention_log.NewEntry(
                        RetentionEvent.PROVIDER_COPY_DELETED,
                        at,
                        row.recording_sid,
                        ACTOR,
                        {"provider": outcome.provider, "by": "retention sweep"},
                    )
                )
            session.execute(
                update(Recording)
                .where(Recording.id == row.id, Recording.claimed_by == holder)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            new_entries.append(
                retention_log.NewEntry(
                    RetentionEvent.DELETE_FAILED,
                    at,
                    row.recording_sid,
                    ACTOR,
                    {"error": error, "due_at": row.due_at.isoformat()},
                )
            )
            report.failed += 1
            if len(report.failures) < MAX_LISTED:
                report.failures.append((row.recording_sid, error))
        marked: set[int] = set()
        if done:
            marked = set(
                session.scalars(
                    update(Recording)
                    .where(
                        Recording.id.in_([o.row.id for o in done]),
                        Recording.claimed_by == holder,
                        Recording.deleted_at.is_(None),
                    )
                    .values(
                        status=RecordingStatus.DELETED,
                        deleted_at=at,
                        # Every copy is gone, Twilio's included, whether now or earlier.
                        provider_deleted_at=func.coalesce(Recording.provider_deleted_at, at),
                        **UNCLAIMED,
                        last_error=None,
                    )
                    .returning(Recording.id)
                    .execution_options(synchronize_session=False)
                )
            )
        for outcome in done:
            row = outcome.row
            if row.id not in marked:
                # Our claim lapsed and someone else finished the recording: they logged it.
                log.warning("retention sweep: %s was finished elsewhere", row.recording_sid)
                continue
            new_entries.append(
                retention_log.NewEntry(
                    RetentionEvent.DELETED,
                    at,
                    row.recording_sid,
                    ACTOR,
                    {
                        "due_at": row.due_at.isoformat(),
                        "previous_status": row.status,
                        "sha256": row.sha256,
                        "object_versions_deleted": outcome.versions_deleted,
                        "provider_copy": outcome.provider,
                    },
                )
            )
            report.deleted += 1
        retention_log.append_many(session, new_entries)


def _note_held(report: SweepReport, row: DueRecording) -> None:
    report.held += 1
    if len(report.held_sids) < MAX_LISTED:
        report.held_sids.append(row.recording_sid)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def renew(session: Session, holder: str, at: datetime) -> bool:
    """Renew the sweep's lease and every claim it holds; tell whether the lease is still ours."""
    if not leases.acquire(session, SWEEP_LEASE, holder, now=at, ttl=SWEEP_LEASE_TTL):
        return False
    session.execute(
        update(Recording)
        .where(Recording.claimed_by == holder, Recording.claim_kind == ClaimKind.SWEEP)
        .values(claimed_until=at + CLAIM_TTL)
        .execution_options(synchronize_session=False)
    )
    return True


class _Heartbeat:
    """Renew the lease and claims every SWEEP_HEARTBEAT from a thread, and after each batch.

    A batch can take longer than the lease (a slow storage, Twilio's retries): the thread keeps
    a live sweep's lease; a dead process's thread dies with it, which is the point.
    """

    def __init__(self, runtime: Runtime, holder: str, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.holder = holder
        self.clock = clock
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-heartbeat", daemon=True)

    def beat(self) -> bool:
        if self.lost.is_set():
            return False
        try:
            with transaction(self.runtime.sessions) as session:
                ours = renew(session, self.holder, self.clock())
        except Exception as exc:
            # A database blip is retried at the next beat; the lease outlives a few of them.
            log.warning("retention sweep: heartbeat failed: %s", _describe(exc))
            return True
        if not ours:
            self.lost.set()
        return ours

    def _run(self) -> None:
        while not self._stop.wait(SWEEP_HEARTBEAT.total_seconds()):
            if not self.beat():
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def _exclusive(runtime: Runtime, holder: str, clock: Callable[[], datetime]) -> Iterator[bool]:
    """Hold the sweep lease (and on PostgreSQL an advisory lock) for the block; yield if ours."""
    advisory: Connection | None = None
    if is_postgres(runtime.engine):
        # A dedicated autocommit connection: a session-level advisory lock lives as long as the
        # connection, and no transaction stays open beside it for the length of the run.
        advisory = runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = advisory.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": SWEEP_ADVISORY_LOCK_KEY}
        ).scalar()
        if not got:
            advisory.close()
            yield False
            return
    try:
        with transaction(runtime.sessions) as session:
            ours = leases.acquire(session, SWEEP_LEASE, holder, now=clock(), ttl=SWEEP_LEASE_TTL)
        if not ours:
            yield False
            return
        try:
            yield True
        finally:
            with transaction(runtime.sessions) as session:
                leases.release(session, SWEEP_LEASE, holder)
    finally:
        if advisory is not None:
            advisory.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": SWEEP_ADVISORY_LOCK_KEY}
            )
            advisory.close()
