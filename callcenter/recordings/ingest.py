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

import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.storage import Storage, StoredObject
from callcenter.adapters.twilio_api import CredentialsRefused, TwilioApi
from callcenter.db import transaction
from callcenter.leases import holder_id as worker_id
from callcenter.recordings.claims import (
    DEFAULT_POLICY,
    Claim,
    IngestPolicy,
    claim,
    mark_failed,
    mark_provider_deleted,
    mark_stored,
    release,
)
from callcenter.recordings.models import Recording
from callcenter.recordings.parts import Parts
from callcenter.recordings.policy import media_key
from callcenter.recordings.states import RecordingStatus

log = logging.getLogger(__name__)

ACTOR = "ingest"


# How many bytes of the media's start are kept to read the WAV header.
_WAV_HEAD_BYTES = 4096


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
        except CredentialsRefused:
            # A setting problem, not Twilio's: no attempt is counted, the run stops, one line.
            with transaction(sessions) as session:
                release(session, claimed)
            raise
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
    except CredentialsRefused:
        with transaction(sessions) as session:
            release(session, claimed)
        raise
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
                    Recording.status == RecordingStatus.PENDING,
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
    return (
        row is None
        or row.deleted_at is not None
        or row.status not in (RecordingStatus.PENDING, RecordingStatus.STORED)
    )


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
    worker = worker or worker_id("ingest")
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


def ingest(runtime: Parts, now: datetime, **kwargs: Any) -> IngestReport:
    """Run `ingest_pending` with a runtime's database, storage and Twilio API (for jobs)."""
    return ingest_pending(runtime.sessions, runtime.storage, runtime.twilio, now=now, **kwargs)
