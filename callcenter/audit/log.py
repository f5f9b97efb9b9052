"""The append-only, hash-chained retention log.

It lives in the core because the recording lifecycle (ingestion) and the retention package
both write to it. Each entry's hash covers the previous entry's hash and the entry itself,
canonically encoded, so an edited, removed or reordered entry breaks the chain. The log holds
no phone number or name: recording SIDs, object checksums, counts, reasons and actors only.
There is deliberately no function here that updates or deletes an entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from callcenter.audit.events import RetentionEvent
from callcenter.audit.models import RetentionEntry
from callcenter.db import is_postgres

GENESIS_HASH = "0" * 64

EVENTS = frozenset(RetentionEvent)

# A constant key for PostgreSQL's transaction-scoped advisory lock that serialises appends.
_APPEND_LOCK_KEY = 0x52455445  # "RETE"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(
    *,
    seq: int,
    at: datetime,
    event: str,
    recording_sid: str | None,
    actor: str,
    details: dict[str, Any],
) -> bytes:
    """Encode an entry canonically: sorted keys, no spaces, UTC microsecond timestamps."""
    body = {
        "seq": seq,
        "at": _iso(at),
        "event": event,
        "recording_sid": recording_sid,
        "actor": actor,
        "details": details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body).hexdigest()


_TAIL = (
    select(RetentionEntry.seq, RetentionEntry.hash, RetentionEntry.at)
    .order_by(RetentionEntry.seq.desc())
    .limit(1)
)


def _not_before(now: datetime, last: datetime | None) -> datetime:
    """Return `now` in UTC, or the last entry's time if this process's clock is behind it.

    The log's times never run backwards (verify reports an entry earlier than the one before
    it): two hosts whose clocks differ by a little would otherwise write them out of order.
    """
    at = now.astimezone(UTC)
    return max(at, last) if last is not None else at


def append(
    session: Session,
    event: str,
    *,
    now: datetime,
    recording_sid: str | None = None,
    actor: str = "system",
    details: dict[str, Any] | None = None,
) -> RetentionEntry:
    """Append one entry to the chain inside the caller's transaction.

    Appends are serialised: an advisory lock on PostgreSQL, SQLite's single writer otherwise;
    the unique `seq` refuses a fork should two writers ever read the same tail.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown retention event {event!r}")
    details = dict(details or {})
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY})
    tail = session.execute(_TAIL).first()
    seq, prev_hash = (tail[0] + 1, tail[1]) if tail else (1, GENESIS_HASH)
    at = _not_before(now, tail[2] if tail else None)
    body = canonical(
        seq=seq, at=at, event=event, recording_sid=recording_sid, actor=actor, details=details
    )
    entry = RetentionEntry(
        seq=seq,
        at=at,
        event=event,
        recording_sid=recording_sid,
        actor=actor,
        details=details,
        prev_hash=prev_hash,
        hash=entry_hash(prev_hash, body),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class NewEntry:
    """An entry to append with `append_many`."""

    event: str
    at: datetime
    recording_sid: str | None = None
    actor: str = "system"
    details: dict[str, Any] = field(default_factory=dict)


def append_many(session: Session, entries: Sequence[NewEntry]) -> list[int]:
    """Append entries to the chain in order, inside the caller's transaction; return their seqs.

    The same chain and the same serialisation as `append`, for a batch: the tail is read once
    and the rows go in one executemany, so a sweep's thousand `deleted` entries cost one
    statement and not a thousand flushes.
    """
    if not entries:
        return []
    for new in entries:
        if new.event not in EVENTS:
            raise ValueError(f"unknown retention event {new.event!r}")
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY})
    # Entries added through the ORM but not flushed yet must be in the tail we read.
    session.flush()
    tail = session.execute(_TAIL).first()
    seq, prev_hash = (tail[0], tail[1]) if tail else (0, GENESIS_HASH)
    last_at = tail[2] if tail else None
    rows: list[dict[str, Any]] = []
    for new in entries:
        seq += 1
        at = last_at = _not_before(new.at, last_at)
        details = dict(new.details)
        body = canonical(
            seq=seq,
            at=at,
            event=new.event,
            recording_sid=new.recording_sid,
            actor=new.actor,
            details=details,
        )
        digest = entry_hash(prev_hash, body)
        rows.append(
            {
                "seq": seq,
                "at": at,
                "event": new.event,
                "recording_sid": new.recording_sid,
                "actor": new.actor,
                "details": details,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    session.execute(insert(RetentionEntry), rows)
    return [row["seq"] for row in rows]


# Entries read per query when streaming the log: bounded memory whatever its length.
STREAM_PAGE_SIZE = 1_000


def iter_entries(
    session: Session, *, since: datetime | None = None, page_size: int = STREAM_PAGE_SIZE
) -> Iterator[RetentionEntry]:
    """Yield entries in `seq` order, a page at a time, never loading the whole log.

    Pages follow `seq` (keyset, through its unique index), so the cost of each page does not
    grow with the log. `since` keeps entries at or after that time (still in `seq` order).
    """
    last_seq: int | None = None
    while True:
        query = select(RetentionEntry).order_by(RetentionEntry.seq).limit(page_size)
        if last_seq is not None:
            query = query.where(RetentionEntry.seq > last_seq)
        if since is not None:
            query = query.where(RetentionEntry.at >= since)
        page = list(session.scalars(query))
        if not page:
            return
        yield from page
        last_seq = page[-1].seq
        # Let the identity map forget the page: entries are never changed, only read.
        for entry in page:
            session.expunge(entry)
        if len(page) < page_size:
            return


@dataclass(frozen=True)
class ChainProblem:
    seq: int | None
    problem: str


def check_chain(entries: Iterable[RetentionEntry]) -> Iterator[ChainProblem]:
    """Recompute the chain over entries in `seq` order and yield every break found."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    prev_at: datetime | None = None
    for entry in entries:
        if entry.seq != expected_seq:
            yield ChainProblem(
                entry.seq,
                f"expected entry {expected_seq} here, found {entry.seq} (removed or reordered)",
            )
        if entry.prev_hash != prev_hash:
            yield ChainProblem(entry.seq, "does not link to the entry before it")
        body = canonical(
            seq=entry.seq,
            at=entry.at,
            event=entry.event,
            recording_sid=entry.recording_sid,
            actor=entry.actor,
            details=entry.details,
        )
        if entry_hash(entry.prev_hash, body) != entry.hash:
            yield ChainProblem(entry.seq, "content does not match its hash (edited)")
        if prev_at is not None and entry.at < prev_at:
            yield ChainProblem(
                entry.seq,
                f"its time {entry.at.isoformat()} is earlier than the entry before it "
                f"({prev_at.isoformat()}): times run backwards",
            )
        prev_hash = entry.hash
        prev_at = entry.at
        expected_seq = entry.seq + 1


def as_dict(entry: RetentionEntry, timezone: Any = UTC) -> dict[str, Any]:
    """Render an entry for export: ISO times with an offset."""
    return {
        "seq": entry.seq,
        "at": entry.at.astimezone(timezone).isoformat(),
        "event": entry.event,
        "recording_sid": entry.recording_sid,
        "actor": entry.actor,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
