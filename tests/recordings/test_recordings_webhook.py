"""`/twilio/recording-status`: signed, strict about its fields, idempotent, and quick."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.audit.models import RetentionEntry
from callcenter.calls.models import Call
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import due_at
from callcenter.settings import Settings
from tests.conftest import PUBLIC_BASE_URL, sign
from tests.fakes.twilio_api import FakeTwilio
from tests.recordings.conftest import PostRecording, callback_form

PATH = "/twilio/recording-status"


def rows(session: Session) -> list[Recording]:
    session.expire_all()
    return list(session.scalars(select(Recording).order_by(Recording.id)))


def test_completed_recording_is_stored_as_pending_and_answered_204(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session, settings: Settings
) -> None:
    rec = fake_twilio.add(start_time=datetime(2016, 8, 22, 11, 21, 15, tzinfo=UTC))

    response = post_recording(rec, RecordingStartTime="Mon, 22 Aug 2016 11:21:15 +0000")

    assert response.status_code == 204
    assert response.data == b""
    [row] = rows(session)
    assert row.recording_sid == rec.sid
    assert row.call_sid == rec.call_sid
    # A call unknown until now was answered by the fallback: its row is written with this.
    assert row.call_id is not None
    assert row.status == "pending"
    assert row.started_at == datetime(2016, 8, 22, 11, 21, 15, tzinfo=UTC)
    assert row.due_at == due_at(row.started_at, settings)
    # 14:21:15 Riga summer time + 3 months = 22 November 14:21:15 Riga winter time (UTC+2).
    assert row.due_at == datetime(2016, 11, 22, 12, 21, 15, tzinfo=UTC)
    assert (row.duration_seconds, row.channels) == (rec.duration, 2)
    assert row.next_attempt_at is not None
    # No download happens in the webhook.
    assert fake_twilio.requests == []


def test_recording_is_linked_to_its_call_when_the_call_is_known(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session
) -> None:
    rec = fake_twilio.add()
    call = Call(call_sid=rec.call_sid, from_number="+37120000001", to_number="+37167000001")
    session.add(call)
    session.commit()

    assert post_recording(rec).status_code == 204

    [row] = rows(session)
    assert row.call_id == call.id


def test_iso_8601_start_time_is_accepted(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session
) -> None:
    rec = fake_twilio.add()
    assert post_recording(rec, RecordingStartTime="2026-01-31T22:30:00+02:00").status_code == 204
    [row] = rows(session)
    assert row.started_at == datetime(2026, 1, 31, 20, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "Mon, 32 Aug 2016 11:21:15 +0000",
        "2026-13-01",
        # Parseable, but the retention clock must not start a millennium away.
        "Fri, 31 Dec 9999 23:00:00 +0000",
        "0001-01-01T00:00:00+00:00",
        # No instant a datetime can hold once in UTC: refused, not a 500.
        "Fri, 31 Dec 9999 23:00:00 -0500",
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:30:00+05:00",
    ],
)
def test_malformed_start_time_is_refused_with_400_and_nothing_stored(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session, value: str
) -> None:
    response = post_recording(fake_twilio.add(), RecordingStartTime=value)
    assert response.status_code == 400
    assert "RecordingStartTime" in response.get_data(as_text=True)
    assert rows(session) == []


def test_unsigned_request_is_refused_with_403(
    client: object, fake_twilio: FakeTwilio, session: Session, settings: Settings
) -> None:
    form = callback_form(fake_twilio.add(), settings.twilio_account_sid or "")
    response = client.post(PATH, data=form)  # type: ignore[attr-defined]
    assert response.status_code == 403
    assert rows(session) == []


def test_wrongly_signed_request_is_refused_with_403(
    twilio_post: object, fake_twilio: FakeTwilio, session: Session, settings: Settings
) -> None:
    form = callback_form(fake_twilio.add(), settings.twilio_account_sid or "")
    bad = sign(PUBLIC_BASE_URL + PATH, form, token="someone-elses-token")
    response = twilio_post(PATH, form, signature=bad)  # type: ignore[operator]
    assert response.status_code == 403
    # A signature over a different path does not carry over either.
    other = sign(PUBLIC_BASE_URL + "/twilio/voice/status", form)
    assert twilio_post(PATH, form, signature=other).status_code == 403  # type: ignore[operator]
    assert rows(session) == []


@pytest.mark.parametrize("field", ["RecordingSid", "CallSid", "RecordingStatus", "AccountSid"])
def test_missing_required_field_is_refused_with_400(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session, field: str
) -> None:
    response = post_recording(fake_twilio.add(), **{field: None})
    assert response.status_code == 400
    assert field in response.get_data(as_text=True)
    assert rows(session) == []


def test_another_accounts_callback_is_refused_with_403(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session
) -> None:
    response = post_recording(fake_twilio.add(), AccountSid="AC" + "f" * 32)
    assert response.status_code == 403
    assert rows(session) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("RecordingSid", "RE../../etc/passwd"),
        ("CallSid", "not-a-call"),
        ("RecordingStatus", "exploded"),
        ("RecordingDuration", "ten"),
        ("RecordingChannels", "7"),
        ("ErrorCode", "16101; drop table"),
    ],
)
def test_unusable_field_is_refused_with_400(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session, field: str, value: str
) -> None:
    response = post_recording(fake_twilio.add(), **{field: value})
    assert response.status_code == 400
    assert field in response.get_data(as_text=True)
    assert rows(session) == []


def test_duplicate_callbacks_leave_one_row(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session
) -> None:
    rec = fake_twilio.add()
    assert post_recording(rec).status_code == 204
    first = rows(session)[0]
    assert post_recording(rec, RecordingDuration="999").status_code == 204
    [row] = rows(session)
    assert row.id == first.id
    assert row.duration_seconds == rec.duration  # the first callback's data stands


def test_concurrent_duplicate_callbacks_leave_one_row(
    app: object, fake_twilio: FakeTwilio, session: Session, settings: Settings
) -> None:
    rec = fake_twilio.add()
    form = callback_form(rec, settings.twilio_account_sid or "")
    signature = sign(PUBLIC_BASE_URL + PATH, form)
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        client = app.test_client()  # type: ignore[attr-defined]
        barrier.wait()
        response = client.post(PATH, data=form, headers={"X-Twilio-Signature": signature})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [204] * 6
    assert session.scalar(select(func.count()).select_from(Recording)) == 1


@pytest.mark.parametrize(("code", "reason"), [("16101", "too short"), ("16102", "silent")])
def test_absent_recording_is_closed_with_its_reason(
    post_recording: PostRecording,
    fake_twilio: FakeTwilio,
    session: Session,
    code: str,
    reason: str,
) -> None:
    rec = fake_twilio.add()
    response = post_recording(rec, RecordingStatus="absent", ErrorCode=code, RecordingDuration="0")
    assert response.status_code == 204
    [row] = rows(session)
    assert (row.status, row.error_code, row.last_error) == ("absent", code, reason)
    # Closed quietly: nothing in the retention log, nothing to ingest.
    assert session.scalar(select(func.count()).select_from(RetentionEntry)) == 0


def test_failed_recording_is_closed_and_logged_once(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session
) -> None:
    rec = fake_twilio.add()
    assert post_recording(rec, RecordingStatus="failed").status_code == 204
    assert post_recording(rec, RecordingStatus="failed").status_code == 204
    [row] = rows(session)
    assert row.status == "failed"
    entries = list(session.scalars(select(RetentionEntry)))
    assert [(e.event, e.recording_sid) for e in entries] == [("ingest_failed", rec.sid)]


def test_in_progress_is_ignored(
    post_recording: PostRecording, fake_twilio: FakeTwilio, session: Session
) -> None:
    response = post_recording(
        fake_twilio.add(), RecordingStatus="in-progress", RecordingDuration="-1"
    )
    assert response.status_code == 204
    assert rows(session) == []
