"""Ingestion: media moves from Twilio's API into storage, verified, before Twilio's copy goes."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.storage import LocalStorage, StoredObject
from callcenter.adapters.twilio_api import CredentialsRefused, TwilioApi
from callcenter.audit.log import check_chain
from callcenter.audit.models import RetentionEntry
from callcenter.db import transaction
from callcenter.recordings import claims
from callcenter.recordings import ingest as ingestion
from callcenter.recordings.claims import IngestPolicy
from callcenter.recordings.ingest import ingest_pending
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import media_key
from callcenter.runtime import Runtime
from tests.cli import run
from tests.fakes.twilio_api import FakeRecording, FakeTwilio
from tests.recordings.conftest import NOW, PostRecording

FAST = IngestPolicy(alert_after_attempts=3)


def ingest(runtime: Runtime, now: datetime = NOW, **kwargs: Any) -> ingestion.IngestReport:
    kwargs.setdefault("policy", FAST)
    # A clock that stands still, so that times can be checked to the second.
    return ingest_pending(
        runtime.sessions, runtime.storage, runtime.twilio, now=lambda: now, **kwargs
    )


def row(session: Session, sid: str) -> Recording:
    session.expire_all()
    found = session.scalar(select(Recording).where(Recording.recording_sid == sid))
    assert found is not None
    return found


def log_events(session: Session, sid: str | None = None) -> list[tuple[str, str | None]]:
    session.expire_all()
    query = select(RetentionEntry).order_by(RetentionEntry.seq)
    if sid is not None:
        query = query.where(RetentionEntry.recording_sid == sid)
    return [(e.event, e.recording_sid) for e in session.scalars(query)]


def local_file(runtime: Runtime, key: str) -> Path:
    storage = runtime.storage
    assert isinstance(storage, LocalStorage)
    return storage.root / key


def leftovers(runtime: Runtime) -> list[Path]:
    """Temporary files left in the storage directory (a failed write must leave none)."""
    storage = runtime.storage
    assert isinstance(storage, LocalStorage)
    return [p for p in storage.root.rglob("*") if p.is_file() and p.name.startswith(".")]


@pytest.fixture
def pending(post_recording: PostRecording, fake_twilio: FakeTwilio) -> FakeRecording:
    """A recording Twilio has and has told us about."""
    rec = fake_twilio.add(size=96_044)
    assert post_recording(rec).status_code == 204
    return rec


def test_recording_is_stored_verified_logged_and_then_deleted_at_twilio(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    report = ingest(runtime)

    assert report.stored == [pending.sid]
    assert report.provider_copies_deleted == [pending.sid]
    r = row(session, pending.sid)
    key = media_key(pending.sid, pending.start_time)
    assert key == f"recordings/{pending.start_time:%Y/%m/%d}/{pending.sid}.wav"
    assert (r.status, r.storage_key, r.size_bytes, r.sha256) == (
        "stored",
        key,
        pending.size,
        pending.sha256(),
    )
    assert local_file(runtime, key).read_bytes() == pending.body()
    assert r.stored_at is not None and r.provider_deleted_at is not None
    assert r.claimed_by is None and r.last_error is None
    assert (r.duration_seconds, r.channels) == (pending.duration, 2)
    assert pending.media_deleted
    # Media came from the API base URL (the callback's RecordingUrl host is unreachable), and
    # the deletion came after it.
    base = f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Recordings/{pending.sid}"
    assert fake_twilio.requests == [("GET", base + ".wav"), ("DELETE", base + ".json")]

    entries = list(session.scalars(select(RetentionEntry).order_by(RetentionEntry.seq)))
    assert [(e.event, e.recording_sid) for e in entries] == [
        ("stored", pending.sid),
        ("provider_copy_deleted", pending.sid),
    ]
    assert entries[0].details == {"key": key, "size": pending.size, "sha256": pending.sha256()}
    assert entries[1].details == {"already_gone": False}
    assert list(check_chain(entries)) == []
    assert leftovers(runtime) == []


def test_a_recording_already_past_its_due_time_is_left_to_the_sweep(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    old = fake_twilio.add(start_time=NOW - timedelta(days=200))
    assert post_recording(old).status_code == 204
    assert ingest(runtime).attempted == 0
    assert fake_twilio.requests == []
    assert row(session, old.sid).status == "pending"


def test_nothing_happens_when_nothing_is_pending(runtime: Runtime, fake_twilio: FakeTwilio) -> None:
    report = ingest(runtime)
    assert report.attempted == 0
    assert fake_twilio.requests == []


def test_a_second_run_does_not_store_or_log_again(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    ingest(runtime)
    again = ingest(runtime, NOW + timedelta(hours=2))
    assert again.attempted == 0
    assert log_events(session) == [("stored", pending.sid), ("provider_copy_deleted", pending.sid)]
    assert fake_twilio.count("GET", ".wav") == 1


def test_wav_header_fills_duration_and_channels_the_callback_left_out(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    rec = fake_twilio.add(size=16_044 * 5, channels=1)
    post_recording(rec, RecordingDuration=None, RecordingChannels=None)
    ingest(runtime)
    r = row(session, rec.sid)
    assert (r.duration_seconds, r.channels) == (5, 1)


def test_media_404_is_retried_with_backoff_until_it_appears(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.fail("media", pending.sid, status=404, times=2)

    first = ingest(runtime)
    assert first.failed == {pending.sid: "MediaNotFound: media not found (404)"}
    r = row(session, pending.sid)
    assert (r.status, r.attempts, r.claimed_by) == ("pending", 1, None)
    assert r.next_attempt_at == NOW + FAST.first_retry
    assert not pending.media_deleted
    assert log_events(session) == []

    # One second before the retry is due nothing is tried; at the due time it is.
    assert ingest(runtime, NOW + FAST.first_retry - timedelta(seconds=1)).attempted == 0
    second = ingest(runtime, NOW + FAST.first_retry)
    assert pending.sid in second.failed
    r = row(session, pending.sid)
    assert r.attempts == 2
    assert r.next_attempt_at == NOW + FAST.first_retry + 2 * FAST.first_retry

    third = ingest(runtime, NOW + timedelta(minutes=5))
    assert third.stored == [pending.sid]
    assert row(session, pending.sid).sha256 == pending.sha256()
    assert fake_twilio.count("GET", ".wav") == 3
    assert log_events(session) == [("stored", pending.sid), ("provider_copy_deleted", pending.sid)]


def test_server_error_is_retried(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.fail("media", pending.sid, status=500)
    assert ingest(runtime).failed == {pending.sid: "TwilioApiError: media request answered 500"}
    assert ingest(runtime, NOW + timedelta(minutes=1)).stored == [pending.sid]


def test_slow_answer_times_out_and_is_retried(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    impatient = TwilioApi(runtime.settings, timeout=(2.0, 0.2))
    fake_twilio.fail("media", pending.sid, delay=0.6)

    report = ingest_pending(runtime.sessions, runtime.storage, impatient, now=NOW, policy=FAST)
    assert report.failed == {pending.sid: "TwilioApiError: media request failed: ReadTimeout"}
    assert row(session, pending.sid).status == "pending"

    later = ingest_pending(
        runtime.sessions, runtime.storage, impatient, now=NOW + timedelta(minutes=1), policy=FAST
    )
    assert later.stored == [pending.sid]


def test_truncated_body_leaves_no_object_and_is_retried(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.fail("media", pending.sid, truncate=True)

    report = ingest(runtime)

    assert report.failed[pending.sid].startswith("TruncatedMedia: media ended after")
    key = media_key(pending.sid, pending.start_time)
    assert not local_file(runtime, key).exists()
    assert leftovers(runtime) == []
    assert row(session, pending.sid).status == "pending"
    assert not pending.media_deleted

    assert ingest(runtime, NOW + timedelta(minutes=1)).stored == [pending.sid]
    assert local_file(runtime, key).read_bytes() == pending.body()


def test_failed_deletion_at_twilio_is_retried_and_logged_once(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.fail("delete", pending.sid, status=500, times=2)

    report = ingest(runtime)
    assert report.stored == [pending.sid]
    assert report.failed == {pending.sid: "TwilioApiError: deletion answered 500"}
    r = row(session, pending.sid)
    assert (r.status, r.provider_deleted_at, r.attempts) == ("stored", None, 1)
    assert r.next_attempt_at == NOW + FAST.first_retry
    assert not pending.media_deleted
    assert log_events(session) == [("stored", pending.sid)]

    assert ingest(runtime, NOW + FAST.first_retry - timedelta(seconds=1)).attempted == 0
    assert pending.sid in ingest(runtime, NOW + FAST.first_retry).failed
    final = ingest(runtime, NOW + timedelta(minutes=10))
    assert final.provider_copies_deleted == [pending.sid]
    assert pending.media_deleted
    assert row(session, pending.sid).provider_deleted_at is not None
    assert log_events(session) == [("stored", pending.sid), ("provider_copy_deleted", pending.sid)]
    # The media was fetched once: retries of the deletion do not download again.
    assert fake_twilio.count("GET", ".wav") == 1


def test_copy_already_gone_at_twilio_counts_as_deleted(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.fail("delete", pending.sid, status=404)
    assert ingest(runtime).provider_copies_deleted == [pending.sid]
    entry = session.scalars(
        select(RetentionEntry).where(RetentionEntry.event == "provider_copy_deleted")
    ).one()
    assert entry.details == {"already_gone": True}


class Crash(BaseException):
    """The process dying at this point (not an error the code could catch and handle)."""


class CrashOnDelete(TwilioApi):
    def delete_recording(self, recording_sid: str) -> bool:
        raise Crash


class CrashMidDownload(TwilioApi):
    def stream_media(self, recording_sid: str) -> Any:
        real = super().stream_media(recording_sid)

        class Dying:
            def __enter__(self) -> Any:
                media = real.__enter__()
                original = media.chunks

                def chunks() -> Any:
                    yield next(original)
                    raise Crash

                media.chunks = chunks()
                return media

            def __exit__(self, *exc: Any) -> None:
                real.__exit__(*exc)

        return Dying()


def test_crash_between_storing_and_deleting_at_twilio_is_recovered(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    with pytest.raises(Crash):
        ingest_pending(
            runtime.sessions,
            runtime.storage,
            CrashOnDelete(runtime.settings),
            now=lambda: NOW,
            policy=FAST,
        )
    # Our copy is committed; Twilio's is still there; the row still carries the dead lease.
    r = row(session, pending.sid)
    assert (r.status, r.provider_deleted_at) == ("stored", None)
    assert r.claimed_until == NOW + FAST.lease
    assert not pending.media_deleted
    assert log_events(session) == [("stored", pending.sid)]

    # While the dead worker's lease lasts nobody else takes the row...
    assert ingest(runtime, NOW + timedelta(minutes=1)).attempted == 0
    # ...then a new worker finishes the job: no second download, one log entry each.
    later = ingest(runtime, NOW + FAST.lease + timedelta(seconds=1))
    assert later.provider_copies_deleted == [pending.sid]
    assert later.stored == []
    assert pending.media_deleted
    assert fake_twilio.count("GET", ".wav") == 1
    assert log_events(session) == [("stored", pending.sid), ("provider_copy_deleted", pending.sid)]


def test_crash_mid_download_leaves_nothing_and_is_recovered(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    with pytest.raises(Crash):
        ingest_pending(
            runtime.sessions,
            runtime.storage,
            CrashMidDownload(runtime.settings),
            now=NOW,
            policy=FAST,
        )
    assert row(session, pending.sid).status == "pending"
    assert leftovers(runtime) == []
    assert not local_file(runtime, media_key(pending.sid, pending.start_time)).exists()

    assert ingest(runtime, NOW + FAST.lease + timedelta(seconds=1)).stored == [pending.sid]
    assert log_events(session) == [("stored", pending.sid), ("provider_copy_deleted", pending.sid)]


def test_twilio_copy_is_kept_when_our_object_has_vanished_before_the_deletion_retry(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.fail("delete", pending.sid, status=500)
    ingest(runtime)
    local_file(runtime, media_key(pending.sid, pending.start_time)).unlink()

    report = ingest(runtime, NOW + timedelta(minutes=5))

    assert "missing" in report.failed[pending.sid]
    assert not pending.media_deleted
    assert fake_twilio.count("DELETE", ".json") == 1


class CorruptingStorage(LocalStorage):
    """A disk that returns other bytes than were written (bit rot, a broken proxy)."""

    def stat(self, key: str) -> StoredObject | None:
        real = super().stat(key)
        return None if real is None else StoredObject(key, real.size, "0" * 64)


def test_object_that_reads_back_wrong_is_removed_and_not_recorded(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    storage = CorruptingStorage(runtime.storage.url[len("file:") :])

    report = ingest_pending(runtime.sessions, storage, runtime.twilio, now=NOW, policy=FAST)

    assert report.failed[pending.sid].startswith("VerificationFailed")
    assert not (storage.root / media_key(pending.sid, pending.start_time)).exists()
    assert row(session, pending.sid).status == "pending"
    assert not pending.media_deleted
    assert log_events(session) == []


def test_persistent_failure_is_logged_once_after_n_attempts_and_retrying_goes_on(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.fail("media", pending.sid, status=404, times=10)
    at = NOW
    for attempt in range(1, 7):
        report = ingest(runtime, at)
        assert pending.sid in report.failed, attempt
        expected = ["ingest_failed"] if attempt >= FAST.alert_after_attempts else []
        assert [e for e, _ in log_events(session)] == expected, attempt
        r = row(session, pending.sid)
        assert r.attempts == attempt
        assert r.next_attempt_at is not None
        at = r.next_attempt_at
    entry = session.scalars(select(RetentionEntry)).one()
    assert entry.details["step"] == "ingest"
    assert entry.details["attempts"] == FAST.alert_after_attempts
    # Retrying never stops; the wait stops growing at the cap.
    assert FAST.backoff(6) == FAST.first_retry * 32
    assert FAST.backoff(60) == FAST.max_retry
    assert ingest(runtime, at + timedelta(hours=3)).stored == []  # the 404s are not over yet
    fake_twilio.faults.clear()
    assert ingest(runtime, at + timedelta(hours=5)).stored == [pending.sid]


def test_absent_and_failed_recordings_are_not_ingested(
    runtime: Runtime, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    post_recording(fake_twilio.add(), RecordingStatus="absent", ErrorCode="16102")
    post_recording(fake_twilio.add(), RecordingStatus="failed")
    assert ingest(runtime).attempted == 0
    assert fake_twilio.requests == []


def test_a_batch_ingests_every_due_recording(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, post_recording: PostRecording
) -> None:
    recs = [fake_twilio.add(size=2_044 + i) for i in range(12)]
    for rec in recs:
        post_recording(rec)
    fake_twilio.fail("media", recs[3].sid, status=500)

    report = ingest(runtime)

    assert sorted(report.stored) == sorted(r.sid for r in recs if r is not recs[3])
    assert list(report.failed) == [recs[3].sid]
    for rec in recs:
        if rec is not recs[3]:
            assert row(session, rec.sid).sha256 == rec.sha256()
    assert ingest(runtime, NOW, limit=5).attempted == 0  # the failed one waits its turn


def test_ingestion_into_s3_versioned_bucket(
    s3_runtime: Runtime,
    session: Session,
    fake_twilio: FakeTwilio,
    post_recording: PostRecording,
    s3_client: Any,
    s3_versioned_bucket: str,
) -> None:
    small = fake_twilio.add(size=40_044)
    # Bigger than one part: goes up as a multipart upload.
    big = fake_twilio.add(size=9 * 1024 * 1024 + 123)
    post_recording(small)
    post_recording(big)

    report = ingest(s3_runtime)

    assert sorted(report.stored) == sorted([small.sid, big.sid])
    for rec in (small, big):
        r = row(session, rec.sid)
        assert (r.size_bytes, r.sha256) == (rec.size, rec.sha256())
        name = f"audio/{media_key(rec.sid, rec.start_time)}"
        body = s3_client.get_object(Bucket=s3_versioned_bucket, Key=name)["Body"].read()
        assert body == rec.body()
        assert s3_runtime.storage.versions_left(r.storage_key or "") == 1
        assert rec.media_deleted
    assert sorted(e for e, _ in log_events(session)) == sorted(
        ["stored", "stored", "provider_copy_deleted", "provider_copy_deleted"]
    )


def test_claims_are_exclusive_and_expire(
    runtime: Runtime, sessions: sessionmaker[Session], pending: FakeRecording
) -> None:
    with transaction(sessions) as s:
        first = claims.claim(s, worker="a", now=NOW, policy=FAST)
    with transaction(sessions) as s:
        second = claims.claim(s, worker="b", now=NOW + FAST.lease - timedelta(seconds=1))
    with transaction(sessions) as s:
        third = claims.claim(s, worker="c", now=NOW + FAST.lease, policy=FAST)
    assert first is not None and first.recording_sid == pending.sid
    assert second is None
    assert third is not None and third.worker == "c" and third.attempts == 2
    # The first worker's late result no longer counts.
    with transaction(sessions) as s:
        assert not claims.mark_stored(s, first, StoredObject("k", 1, "0" * 64), now=NOW)


def test_a_worker_whose_lease_ran_out_does_not_touch_the_new_holders_copy(
    runtime: Runtime,
    sessions: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    pending: FakeRecording,
) -> None:
    with transaction(sessions) as s:
        stale = claims.claim(s, worker="slow", now=NOW, policy=FAST)
    assert stale is not None
    # The lease runs out; another worker ingests the recording completely.
    report = ingestion.ingest_pending(
        runtime.sessions,
        runtime.storage,
        runtime.twilio,
        now=NOW + FAST.lease + timedelta(minutes=1),
        worker="fresh",
        policy=FAST,
    )
    assert report.stored == [pending.sid]
    key = media_key(pending.sid, pending.start_time)
    good = runtime.storage.stat(key)
    assert good is not None
    # Twilio still serves the media (say its deletion failed): the stale worker finishes its
    # download now, and must neither overwrite nor delete the stored copy.
    pending.media_deleted = False
    report = ingestion.ingest_one(
        runtime.sessions, runtime.storage, runtime.twilio, stale, now=NOW + FAST.lease * 2
    )
    assert pending.sid in report.failed and "another worker" in report.failed[pending.sid]
    assert runtime.storage.stat(key) == good
    with sessions() as s:
        assert row(s, pending.sid).status == "stored"


def test_a_download_that_outlives_its_lease_and_the_deletion_leaves_no_copy(
    runtime: Runtime,
    sessions: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    post_recording: PostRecording,
    session: Session,
) -> None:
    from dateutil.relativedelta import relativedelta

    from callcenter.recordings.verification import verify
    from retention.sweep import sweep

    # A recording that falls due while its download is still running, past the lease.
    start = (NOW - relativedelta(months=3) + timedelta(minutes=30)).replace(microsecond=0)
    recording = fake_twilio.add(start_time=start, size=50_000)
    assert post_recording(recording).status_code == 204
    due = session.scalar(select(Recording.due_at).where(Recording.recording_sid == recording.sid))
    assert due is not None
    with transaction(sessions) as s:
        slow = claims.claim(s, worker="slow", now=due - timedelta(minutes=5))
    assert slow is not None and slow.step == "ingest"
    storage = runtime.storage
    write = storage.put_stream

    def put_while_the_sweep_runs(key: str, chunks: Any) -> StoredObject:
        data = list(chunks)
        # The lease has run out and the recording is due: the sweep deletes what there is.
        assert sweep(runtime, now=due + timedelta(minutes=11)).counts()["deleted"] == 1
        return write(key, iter(data))

    storage.put_stream = put_while_the_sweep_runs  # type: ignore[method-assign]
    report = ingestion.ingest_one(
        runtime.sessions, storage, runtime.twilio, slow, now=due + timedelta(minutes=12)
    )
    storage.put_stream = write  # type: ignore[method-assign]
    assert report.lost_claims == [recording.sid]
    # The copy written after the deletion is removed: the audio is gone, as the log says.
    assert not storage.exists(media_key(recording.sid, recording.start_time))
    assert list(verify(session, storage, now=due + timedelta(hours=1))) == []


def test_twilio_refusing_the_token_stops_ingestion_and_schedules_no_retry(
    runtime: Runtime, session: Session, fake_twilio: FakeTwilio, pending: FakeRecording
) -> None:
    fake_twilio.auth_token = "rotated-elsewhere"
    with pytest.raises(CredentialsRefused, match="TWILIO_AUTH_TOKEN"):
        ingest(runtime)
    r = row(session, pending.sid)
    # Not a temporary error of the recording: no error kept, no later retry scheduled, the
    # claim given back; the next run with the right token takes it at once.
    assert (r.status, r.claimed_by, r.last_error) == ("pending", None, None)
    assert r.next_attempt_at is None or r.next_attempt_at <= NOW
    fake_twilio.auth_token = runtime.settings.twilio_auth_token or ""
    assert ingest(runtime).stored == [pending.sid]


def test_the_ingest_command_says_the_token_is_refused_in_one_line(
    env: dict[str, str],
    fake_twilio: FakeTwilio,
    pending: FakeRecording,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_twilio.auth_token = "rotated-elsewhere"
    result = run(capsys, monkeypatch, env, "recordings", "ingest")
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "TWILIO_AUTH_TOKEN" in lines[0], result.err
