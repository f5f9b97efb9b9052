"""Verification: the retention log's chain is intact and storage matches what the log says.

Every check streams its rows (keyset pages, never the whole table at once) and yields one
`Mismatch` per problem, so `callcenter retention verify` can print one line each and exit
non-zero. Checks:
- the hash chain, recomputed over the whole log in `seq` order;
- every recording kept (`stored`) is in storage with its size and SHA-256 (all, or a sample);
- no deleted recording has any object version or delete marker left;
- nothing is kept more than the contract's 24 hours past its due time outside a legal hold;
- every recording marked deleted has a `deleted` entry, and every `deleted` entry's recording is
  marked deleted;
- every `stored` entry's recording exists;
- a recording the log says is kept (stored, never deleted) is marked kept, and its object is
  where the log says, with the logged SHA-256; deleted recordings are checked at the key the log
  vouches for, not only the row's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from callcenter.adapters.storage import Storage, StorageUnavailable, outage
from callcenter.audit import log as retention_log
from callcenter.audit import notes
from callcenter.audit.events import RetentionEvent
from callcenter.audit.models import AuditNote, RetentionEntry, VerificationRun
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import media_key
from callcenter.recordings.states import RecordingStatus

# The contract: "everything due is gone within 24 hours". The sweep runs daily, so a recording
# a few hours past due is normal; one kept longer than this is a broken promise.
DELETION_GRACE = timedelta(hours=24)
# Rows read per query.
PAGE_SIZE = 1_000

# A second view of the log, for "is there a later entry" questions about an entry.
Deleted = aliased(RetentionEntry)


@dataclass(frozen=True)
class Mismatch:
    """One problem found, named so that a person can act on it."""

    check: str
    subject: str
    problem: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.problem}"


@dataclass
class VerifySummary:
    entries: int = 0
    stored_checked: int = 0
    deleted_checked: int = 0
    mismatches: int = 0
    checks: list[str] = field(default_factory=list)
    # The last entry: a reviewer notes it, and a later run whose chain does not pass through
    # it shows that entries were cut off the end.
    head: tuple[int, str] | None = None
    # Reasons redacted on a lawful request: reported as such, never as tampering.
    redactions: list[str] = field(default_factory=list)
    # Notes the chain refers to, by id: the SHA-256 each entry vouches for.
    note_refs: dict[int, str] = field(default_factory=dict, repr=False)


def verify(
    session: Session,
    storage: Storage,
    *,
    now: datetime,
    sample: int | None = None,
    summary: VerifySummary | None = None,
) -> Iterator[Mismatch]:
    """Yield every mismatch between the log, the database and storage.

    Rules: `sample` checks that many kept and deleted recordings chosen at random instead of
    all of them; the chain and the database cross-checks always cover everything.
    """
    summary = summary if summary is not None else VerifySummary()
    for mismatch in _all(session, storage, now=now, sample=sample, summary=summary):
        summary.mismatches += 1
        yield mismatch


def _all(
    session: Session,
    storage: Storage,
    *,
    now: datetime,
    sample: int | None,
    summary: VerifySummary,
) -> Iterator[Mismatch]:
    # An unreachable storage is one problem with the setting or the service, not a mismatch
    # per recording: StorageUnavailable stops the run before any object is judged.
    storage.probe()
    yield from check_chain(session, summary)
    yield from check_notes(session, summary)
    yield from check_stored(session, storage, sample=sample, summary=summary)
    yield from check_deleted_objects(session, storage, sample=sample, summary=summary)
    yield from check_overdue(session, now=now)
    yield from check_log_matches_rows(session)
    yield from check_logged_kept(session, storage)


def check_notes(session: Session, summary: VerifySummary) -> Iterator[Mismatch]:
    """Check the reasons kept beside the chain against the hashes the chain holds.

    A redacted note (its text removed on a lawful request, with a record of it) is reported as
    a redaction; a note edited, removed without a record, or swapped for another is a mismatch.
    """
    for problem in notes.check(session):
        if problem.redacted:
            summary.redactions.append(f"note {problem.note_id}: {problem.problem}")
        else:
            yield Mismatch("notes", f"note {problem.note_id}", problem.problem)
    refs = summary.note_refs
    for start in range(0, len(refs), PAGE_SIZE):
        ids = list(refs)[start : start + PAGE_SIZE]
        query = select(AuditNote.id, AuditNote.sha256).where(AuditNote.id.in_(ids))
        kept = {note_id: sha256 for note_id, sha256 in session.execute(query)}
        for note_id in ids:
            if note_id not in kept:
                yield Mismatch("notes", f"note {note_id}", "the log refers to it but it is gone")
            elif kept[note_id] != refs[note_id]:
                yield Mismatch("notes", f"note {note_id}", "its hash differs from the log's")


def _raise_if_outage(storage: Storage, exc: Exception) -> None:
    problem = outage(exc)
    if problem is not None:
        raise StorageUnavailable(storage.url, problem) from exc


def check_chain(session: Session, summary: VerifySummary) -> Iterator[Mismatch]:
    """Recompute the hash chain over the whole log, streamed in `seq` order."""

    def counted() -> Iterator[RetentionEntry]:
        for entry in retention_log.iter_entries(session):
            summary.entries += 1
            summary.head = (entry.seq, entry.hash)
            for name, value in (entry.details or {}).items():
                if name.endswith("_note") and isinstance(value, int):
                    summary.note_refs[value] = str(entry.details.get(name[:-5] + "_sha256"))
            yield entry

    for problem in retention_log.check_chain(counted()):
        subject = f"entry {problem.seq}" if problem.seq is not None else "log"
        yield Mismatch("chain", subject, problem.problem)


Row = tuple[str, str | None, int | None, str | None, datetime]


def _recording_pages(session: Session, *, status: str, sample: int | None) -> Iterator[list[Row]]:
    """Yield (sid, key, size, sha256, started_at) of recordings in `status`, a page at a time."""
    columns = (
        Recording.id,
        Recording.recording_sid,
        Recording.storage_key,
        Recording.size_bytes,
        Recording.sha256,
        Recording.started_at,
    )
    if sample is not None:
        query = select(*columns).where(Recording.status == status).order_by(func.random())
        yield [(r[1], r[2], r[3], r[4], r[5]) for r in session.execute(query.limit(sample))]
        return
    last_id = 0
    while True:
        page = session.execute(
            select(*columns)
            .where(Recording.status == status, Recording.id > last_id)
            .order_by(Recording.id)
            .limit(PAGE_SIZE)
        ).all()
        yield [(r[1], r[2], r[3], r[4], r[5]) for r in page]
        if len(page) < PAGE_SIZE:
            return
        last_id = page[-1][0]


def _logged_stored(session: Session, sids: list[str]) -> dict[str, dict[str, Any]]:
    """Return what each recording's latest `stored` log entry vouches for (key, size, sha256)."""
    found: dict[str, dict[str, Any]] = {}
    for sid, details in session.execute(
        select(RetentionEntry.recording_sid, RetentionEntry.details)
        .where(
            RetentionEntry.event == RetentionEvent.STORED, RetentionEntry.recording_sid.in_(sids)
        )
        .order_by(RetentionEntry.seq)
    ):
        found[str(sid)] = details or {}
    return found


def check_stored(
    session: Session, storage: Storage, *, sample: int | None, summary: VerifySummary
) -> Iterator[Mismatch]:
    """Check that every kept recording's object is there, as the log's `stored` entry says.

    The object is compared with the checksum in the hash-chained log, not only with the row:
    a row can be edited, the log cannot without breaking the chain.
    """
    for page in _recording_pages(session, status=RecordingStatus.STORED, sample=sample):
        logged = {
            sid: details.get("sha256")
            for sid, details in _logged_stored(session, [row[0] for row in page]).items()
        }
        for sid, key, size, sha256, _started in page:
            summary.stored_checked += 1
            if not key:
                yield Mismatch("storage", sid, "kept but has no storage key")
                continue
            if sid not in logged:
                yield Mismatch("log", sid, "kept but the log has no `stored` entry for it")
            try:
                found = storage.stat(key)
            except Exception as exc:
                _raise_if_outage(storage, exc)
                yield Mismatch("storage", sid, f"could not be read: {type(exc).__name__}: {exc}")
                continue
            if found is None:
                yield Mismatch("storage", sid, "kept but its object is missing from storage")
                continue
            if logged.get(sid) is not None and found.sha256 != logged[sid]:
                yield Mismatch("storage", sid, "object checksum differs from the logged SHA-256")
            elif sha256 is not None and found.sha256 != sha256:
                yield Mismatch("storage", sid, "object checksum differs from the recorded SHA-256")
            elif size is not None and found.size != size:
                yield Mismatch("storage", sid, f"object is {found.size} bytes, {size} recorded")


def check_deleted_objects(
    session: Session, storage: Storage, *, sample: int | None, summary: VerifySummary
) -> Iterator[Mismatch]:
    """Check that no deleted recording has an object version, delete marker or partial left.

    A recording deleted without ever being marked stored is checked at the key its audio
    would have had, so an upload that escaped the row is found too.
    """
    for page in _recording_pages(session, status=RecordingStatus.DELETED, sample=sample):
        logged = _logged_stored(session, [row[0] for row in page])
        for sid, key, _size, _sha, started_at in page:
            summary.deleted_checked += 1
            # The key the log vouches for first: a row's key can be edited, the log's cannot.
            keys = dict.fromkeys(
                k for k in (logged.get(sid, {}).get("key"), key or media_key(sid, started_at)) if k
            )
            for checked in keys:
                try:
                    left = storage.versions_left(checked)
                except Exception as exc:
                    _raise_if_outage(storage, exc)
                    yield Mismatch(
                        "storage", sid, f"could not be checked: {type(exc).__name__}: {exc}"
                    )
                    continue
                if left:
                    yield Mismatch("storage", sid, f"deleted but {left} object version(s) are left")


def check_logged_kept(session: Session, storage: Storage) -> Iterator[Mismatch]:
    """Check that a recording the log says is kept (stored, never deleted) is kept.

    Recordings marked stored are checked object by object (`check_stored`) and deleted ones
    against their `deleted` entry; this finds the rest: a row relabelled away from what the log
    says, whose audio may then be missing without any row saying it should be there.
    """
    later_deleted = exists().where(
        Deleted.recording_sid == RetentionEntry.recording_sid,
        Deleted.event == RetentionEvent.DELETED,
        Deleted.seq > RetentionEntry.seq,
    )
    query = (
        select(RetentionEntry.seq, RetentionEntry.recording_sid, RetentionEntry.details,
               Recording.status)
        .join(Recording, Recording.recording_sid == RetentionEntry.recording_sid)
        .where(
            RetentionEntry.event == RetentionEvent.STORED,
            ~later_deleted,
            Recording.status.not_in((RecordingStatus.STORED, RecordingStatus.DELETED)),
        )
        .order_by(RetentionEntry.seq)
    )  # fmt: skip
    for seq, sid, details, status in session.execute(query).yield_per(PAGE_SIZE):
        key = (details or {}).get("key")
        problem = f"entry {seq} says stored and no entry says deleted, but it is marked {status}"
        try:
            found = storage.stat(key) if key else None
        except Exception as exc:
            problem += f"; its object could not be read: {type(exc).__name__}"
        else:
            if found is None:
                problem += "; its object is missing from storage"
            elif found.sha256 != (details or {}).get("sha256"):
                problem += "; its object differs from the logged SHA-256"
        yield Mismatch("log", str(sid), problem)


def check_overdue(session: Session, *, now: datetime) -> Iterator[Mismatch]:
    """Check that nothing is kept past its due time (plus the grace) outside a legal hold."""
    limit = now - DELETION_GRACE
    after: tuple[datetime, int] | None = None
    while True:
        query = (
            select(Recording.id, Recording.recording_sid, Recording.due_at, Recording.last_error)
            .where(
                Recording.deleted_at.is_(None),
                Recording.due_at < limit,
                Recording.on_hold.is_(False),
            )
            .order_by(Recording.due_at, Recording.id)
            .limit(PAGE_SIZE)
        )
        if after is not None:
            query = query.where(
                Recording.due_at >= after[0],
                (Recording.due_at > after[0]) | (Recording.id > after[1]),
            )
        page = session.execute(query).all()
        for _id, sid, due, last_error in page:
            why = f" (last error: {last_error})" if last_error else ""
            yield Mismatch(
                "overdue", sid, f"due {due.isoformat()} and still kept without a hold{why}"
            )
        if len(page) < PAGE_SIZE:
            return
        after = (page[-1][2], page[-1][0])


def check_log_matches_rows(session: Session) -> Iterator[Mismatch]:
    """Cross-check `deleted`/`stored` entries against the recordings table."""
    deleted_entry = exists().where(
        RetentionEntry.recording_sid == Recording.recording_sid,
        RetentionEntry.event == RetentionEvent.DELETED,
    )
    for (sid,) in session.execute(
        select(Recording.recording_sid)
        .where(Recording.status == RecordingStatus.DELETED, ~deleted_entry)
        .order_by(Recording.id)
    ).yield_per(PAGE_SIZE):
        yield Mismatch("log", sid, "marked deleted but the log has no `deleted` entry")

    kept_row = exists().where(
        and_(
            Recording.recording_sid == RetentionEntry.recording_sid,
            Recording.status == RecordingStatus.DELETED,
        )
    )
    for seq, entry_sid in session.execute(
        select(RetentionEntry.seq, RetentionEntry.recording_sid)
        .where(RetentionEntry.event == RetentionEvent.DELETED, ~kept_row)
        .order_by(RetentionEntry.seq)
    ).yield_per(PAGE_SIZE):
        yield Mismatch("log", str(entry_sid), f"entry {seq} says deleted but the recording is not")

    any_row = exists().where(Recording.recording_sid == RetentionEntry.recording_sid)
    for seq, entry_sid in session.execute(
        select(RetentionEntry.seq, RetentionEntry.recording_sid)
        .where(RetentionEntry.event == RetentionEvent.STORED, ~any_row)
        .order_by(RetentionEntry.seq)
    ).yield_per(PAGE_SIZE):
        yield Mismatch(
            "log", str(entry_sid), f"entry {seq} says stored but no such recording exists"
        )


# How many recordings the scheduler's daily verification samples from storage.
DAILY_SAMPLE = 200
# A last verification older than this is a warning on the console and in /healthz.
STALE_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class RunResult:
    """What one verification found, as kept in its history."""

    ok: bool
    head: str | None
    entries: int
    problems: list[str]
    redactions: list[str]


def run(
    session: Session, storage: Storage, *, now: datetime, by: str, sample: int | None = None
) -> RunResult:
    """Verify, keep the result in the history (`verification_runs`), and return it.

    Rules: the caller commits; a storage outage raises StorageUnavailable and keeps no result
    (nothing was judged). `by` is a user handle, or "scheduler".
    """
    summary = VerifySummary()
    problems = [str(m) for m in verify(session, storage, now=now, sample=sample, summary=summary)]
    head = f"{summary.head[0]}:{summary.head[1]}" if summary.head else None
    result = RunResult(not problems, head, summary.entries, problems, summary.redactions)
    session.add(
        VerificationRun(
            at=now,
            by=notes.handle(by),
            sample=sample,
            ok=result.ok,
            head=head,
            entries=summary.entries,
            # Bounded: a broken store could list a problem per recording.
            problems=problems[:1_000],
        )
    )
    session.flush()
    return result


def history(session: Session, *, limit: int = 50) -> list[VerificationRun]:
    """The latest verifications, newest first."""
    query = select(VerificationRun).order_by(VerificationRun.at.desc(), VerificationRun.id.desc())
    return list(session.scalars(query.limit(limit)))


def last_run(session: Session) -> VerificationRun | None:
    found = history(session, limit=1)
    return found[0] if found else None
