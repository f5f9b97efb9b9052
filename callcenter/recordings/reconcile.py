"""Reconciliation: Twilio's recording list against our rows and storage; what callbacks missed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.storage import Storage
from callcenter.adapters.twilio_api import RECORDING_SID
from callcenter.audit import log as retention_log
from callcenter.audit.events import RetentionEvent
from callcenter.audit.models import RetentionEntry
from callcenter.db import transaction
from callcenter.leases import holder_id as worker_id
from callcenter.recordings.callback import check_start_time, insert_recording
from callcenter.recordings.claims import DEFAULT_POLICY, IngestPolicy, claim, release
from callcenter.recordings.ingest import ingest_one
from callcenter.recordings.models import Recording
from callcenter.recordings.parts import Parts
from callcenter.recordings.policy import due_at
from callcenter.recordings.states import ClaimKind, RecordingStatus
from callcenter.twilio_values import CALL_SID, parse_twilio_time

log = logging.getLogger(__name__)

ACTOR = "ingest"


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
    runtime: Parts,
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
            claimed = claim(
                session,
                worker=worker,
                now=now,
                policy=policy,
                recording_sid=sid,
                kind=ClaimKind.RECONCILE,
            )
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
    runtime: Parts, items: list[dict[str, Any]], now: datetime, report: ReconcileReport
) -> list[str]:
    """Create rows for lost callbacks; return SIDs whose Twilio copy we may delete now."""

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
            if (
                row[1] == RecordingStatus.STORED
                and row[2] is None
                and item.get("status") == "completed"
            ):
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
            if insert_recording(
                session,
                **values,
                due_at=due_at(values["started_at"], runtime.settings),
                status=RecordingStatus.PENDING,
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
                .where(Recording.status == RecordingStatus.STORED, Recording.id > last_id)
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
                    RetentionEntry.event == RetentionEvent.MISSING_OBJECT,
                )
            )
            if seen is None:
                retention_log.append(
                    session,
                    RetentionEvent.MISSING_OBJECT,
                    now=now,
                    recording_sid=item.recording_sid,
                    actor="reconcile",
                    details={"key": item.storage_key},
                )
    return missing
