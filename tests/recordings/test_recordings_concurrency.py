"""Several ingestion workers at once: each recording is stored, logged and deleted once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.adapters.storage import open_storage
from callcenter.adapters.twilio_api import TwilioApi
from callcenter.audit.log import check_chain
from callcenter.audit.models import RetentionEntry
from callcenter.recordings.ingest import IngestReport, ingest_pending
from callcenter.recordings.models import Recording
from callcenter.runtime import Runtime
from tests.conftest import TEST_DATABASE_URL
from tests.fakes.twilio_api import FakeTwilio
from tests.recordings.conftest import NOW, PostRecording

WORKERS = 4
RECORDINGS = 40


@pytest.mark.postgres
@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL (PostgreSQL)")
def test_concurrent_workers_store_each_recording_exactly_once(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    run_workers(runtime, session, fake_twilio, post_recording)


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="the PostgreSQL run has its own test")
def test_concurrent_workers_on_sqlite_do_not_trip_over_each_other(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    # SQLite has one writer and no row locks; the single-statement claims still hold.
    run_workers(runtime, session, fake_twilio, post_recording)


def run_workers(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    recs = [fake_twilio.add(size=20_044 + i) for i in range(RECORDINGS)]
    for rec in recs:
        assert post_recording(rec).status_code == 204
    # A few failures on the way, so that some rows come back for a retry mid-run.
    fake_twilio.fail("media", recs[0].sid, status=500)
    fake_twilio.fail("delete", recs[1].sid, status=500)

    reports: list[tuple[int, IngestReport]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(WORKERS)

    def work(n: int) -> None:
        # Each worker is its own process in production: its own HTTP session and S3 client.
        twilio = TwilioApi(runtime.settings)
        storage = open_storage(runtime.settings)
        barrier.wait()
        try:
            # Three rounds, five minutes apart: the failed attempts are due again by then.
            for round_ in range(3):
                report = ingest_pending(
                    runtime.sessions,
                    storage,
                    twilio,
                    now=NOW + round_ * timedelta(minutes=5),
                    worker=f"worker-{n}",
                )
                reports.append((n, report))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stored = Counter(sid for _, report in reports for sid in report.stored)
    deleted = Counter(sid for _, report in reports for sid in report.provider_copies_deleted)
    assert stored == Counter({rec.sid: 1 for rec in recs})
    assert deleted == Counter({rec.sid: 1 for rec in recs})
    # Every worker got a share (the claims spread the work rather than serialising it).
    assert len({n for n, report in reports if report.stored}) > 1

    entries = list(session.scalars(select(RetentionEntry).order_by(RetentionEntry.seq)))
    assert Counter((e.event, e.recording_sid) for e in entries) == Counter(
        {("stored", r.sid): 1 for r in recs} | {("provider_copy_deleted", r.sid): 1 for r in recs}
    )
    assert list(check_chain(entries)) == []
    rows = list(session.scalars(select(Recording)))
    assert {(r.status, r.claimed_by) for r in rows} == {("stored", None)}
    assert all(r.provider_deleted_at is not None for r in rows)
    by_sid = {r.recording_sid: r for r in rows}
    assert all(by_sid[rec.sid].sha256 == rec.sha256() for rec in recs)
    # One successful download per recording, plus the one that failed once.
    assert fake_twilio.count("GET", ".wav") == RECORDINGS + 1
    assert all(rec.media_deleted for rec in recs)
