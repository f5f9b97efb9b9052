"""The compliance API: the retention log, holds, what is due, verification, and listening to a
recording with a stated reason through a short-lived signed address that answers ranges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.audit.models import AuditNote, RetentionEntry
from callcenter.recordings import verification
from callcenter.recordings.models import Recording
from callcenter.runtime import Runtime
from tests.calls.conftest import Clock
from tests.console.conftest import AUDIO, AddRecording, SignedIn, bearer


def ask(
    client: FlaskClient,
    token: str,
    sid: str,
    reason: str | None = "quality review of case 17",
    purpose: str = "listen",
) -> tuple[int, dict]:
    body: dict = {"purpose": purpose}
    if reason is not None:
        body["reason"] = reason
    response = client.post(f"/api/recordings/{sid}/access", json=body, headers=bearer(token))
    return response.status_code, response.get_json()


def path_of(url: str) -> str:
    return urlsplit(url).path


def accessed(sessions: sessionmaker[Session]) -> list[RetentionEntry]:
    with sessions() as session:
        return list(
            session.scalars(select(RetentionEntry).where(RetentionEntry.event == "accessed"))
        )


def test_a_reason_is_required_and_nothing_is_logged_without_one(
    client: FlaskClient, tokens: dict[str, str], add_recording: AddRecording, sessions: Any
) -> None:
    sid = add_recording()
    for reason in (None, "", "   "):
        status, body = ask(client, tokens["compliance"], sid, reason)
        assert status == 400 and "reason" in body["error"]
    status, body = ask(client, tokens["compliance"], sid, purpose="copy")
    assert status == 400
    status, body = ask(client, tokens["compliance"], sid, reason="call him at +371 29 123 456")
    assert status == 422 and "phone number" in body["error"]
    assert accessed(sessions) == []


def test_the_access_is_on_the_record_before_the_address_exists_and_the_chain_verifies(
    client: FlaskClient,
    tokens: dict[str, str],
    add_recording: AddRecording,
    sessions: sessionmaker[Session],
    runtime: Runtime,
    clock: Clock,
) -> None:
    sid = add_recording()
    status, body = ask(client, tokens["supervisor"], sid)
    assert status == 200, body
    assert set(body) == {"url", "expires_at"}
    assert body["url"].startswith("https://calls.example.test/api/recordings/")
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=1) < expires - clock.now <= timedelta(minutes=10)
    [entry] = accessed(sessions)
    assert (entry.recording_sid, entry.actor, entry.details["purpose"]) == (sid, "boss", "listen")
    assert "reason" not in json.dumps(entry.details).replace("reason_note", "").replace(
        "reason_sha256", ""
    )
    with sessions() as session:
        note = session.get(AuditNote, entry.details["reason_note"])
        assert note is not None and note.text == "quality review of case 17"
    # Nobody has read a byte yet, and the record is already there; the chain holds.
    response = client.get(path_of(body["url"]))
    assert response.status_code == 200
    assert response.data == AUDIO
    assert response.headers["Content-Length"] == str(len(AUDIO))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Content-Disposition"].startswith("inline")
    with sessions.begin() as session:
        result = verification.run(session, runtime.storage, now=clock.now, by="audit")
    assert result.ok, result.problems
    assert result.head is not None and result.head.startswith(f"{entry.seq}:")


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),  # the first bytes
        ("bytes=1000-1999", 1000, 1999),  # a middle range
        ("bytes=-500", len(AUDIO) - 500, len(AUDIO) - 1),  # the end (a suffix)
        ("bytes=204000-", 204000, len(AUDIO) - 1),  # from an offset to the end
        ("bytes=204700-999999999", 204700, len(AUDIO) - 1),  # past the end: cut at the end
    ],
)
def test_ranges_are_answered_with_206(
    client: FlaskClient,
    tokens: dict[str, str],
    add_recording: AddRecording,
    header: str,
    start: int,
    end: int,
) -> None:
    sid = add_recording()
    _status, body = ask(client, tokens["compliance"], sid)
    response = client.get(path_of(body["url"]), headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(AUDIO)}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.data == AUDIO[start : end + 1]


def test_an_unsatisfiable_range_gets_416_and_the_size(
    client: FlaskClient, tokens: dict[str, str], add_recording: AddRecording
) -> None:
    sid = add_recording()
    _status, body = ask(client, tokens["compliance"], sid)
    response = client.get(path_of(body["url"]), headers={"Range": f"bytes={len(AUDIO)}-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(AUDIO)}"
    assert response.data == b""
    # A Range header that cannot be read is ignored: the whole audio.
    response = client.get(path_of(body["url"]), headers={"Range": "lines=1-2"})
    assert response.status_code == 200 and response.data == AUDIO


def test_download_is_an_attachment(
    client: FlaskClient, tokens: dict[str, str], add_recording: AddRecording
) -> None:
    sid = add_recording()
    status, body = ask(client, tokens["compliance"], sid, purpose="download")
    assert status == 200
    response = client.get(path_of(body["url"]))
    assert response.headers["Content-Disposition"] == f'attachment; filename="{sid}.wav"'
    assert response.data == AUDIO


def test_an_expired_altered_or_other_recordings_address_is_refused(
    client: FlaskClient, tokens: dict[str, str], add_recording: AddRecording, clock: Clock
) -> None:
    sid, other = add_recording(), add_recording()
    _status, body = ask(client, tokens["compliance"], sid)
    path = path_of(body["url"])
    token = path.rsplit("/", 1)[1]
    # Altered: one character of the token changed.
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    assert client.get(path.replace(token, flipped)).status_code == 403
    # Another recording's path with this token.
    response = client.get(path.replace(sid, other))
    assert response.status_code == 403
    assert set(response.get_json()) == {"error"}
    # Still fine just before it expires; refused from the second it does.
    expires = datetime.fromisoformat(body["expires_at"]).astimezone(UTC)
    clock.set(expires - timedelta(seconds=1))
    assert client.get(path).status_code == 200
    clock.set(expires)
    response = client.get(path)
    assert response.status_code == 403 and "expired" in response.get_json()["error"]


def test_another_signed_in_user_may_not_use_an_address(
    signed_in: SignedIn, tokens: dict[str, str], add_recording: AddRecording, client: FlaskClient
) -> None:
    sid = add_recording()
    _status, body = ask(client, tokens["compliance"], sid)
    path = path_of(body["url"])
    assert signed_in("supervisor").get(path).status_code == 403
    assert signed_in("staff").get(path).status_code == 403
    assert signed_in("compliance").get(path).status_code == 200
    assert signed_in(None).get(path).status_code == 200  # whoever holds it


def test_a_deleted_recording_cannot_be_asked_for_nor_streamed(
    client: FlaskClient,
    tokens: dict[str, str],
    add_recording: AddRecording,
    sessions: sessionmaker[Session],
    clock: Clock,
) -> None:
    gone = add_recording(status="deleted")
    status, body = ask(client, tokens["compliance"], gone)
    assert status == 422 and "deleted" in body["error"]
    assert ask(client, tokens["compliance"], "RE" + "0" * 32)[0] == 404
    # Deleted after the address was made: 410, not the audio.
    sid = add_recording()
    _status, body = ask(client, tokens["compliance"], sid)
    with sessions.begin() as session:
        recording = session.scalars(select(Recording).where(Recording.recording_sid == sid)).one()
        recording.status, recording.deleted_at = "deleted", clock.now
    assert client.get(path_of(body["url"])).status_code == 410


def test_holds_placed_listed_and_released_with_reasons(
    client: FlaskClient, tokens: dict[str, str], add_recording: AddRecording
) -> None:
    sid = add_recording()
    auth = bearer(tokens["compliance"])
    response = client.post("/api/retention/holds", json={"recording_sid": sid}, headers=auth)
    assert response.status_code == 422 and "reason" in response.get_json()["error"]
    response = client.post(
        "/api/retention/holds",
        json={"recording_sid": sid, "reason": "court case 2026/14"},
        headers=auth,
    )
    assert response.status_code == 201, response.get_json()
    hold = response.get_json()
    assert (hold["recording_sid"], hold["placed_by"], hold["reason"]) == (
        sid,
        "audit",
        "court case 2026/14",
    )
    again = client.post(
        "/api/retention/holds", json={"recording_sid": sid, "reason": "again"}, headers=auth
    )
    assert again.status_code == 422 and "already on hold" in again.get_json()["error"]
    assert [h["recording_sid"] for h in client.get("/api/retention/holds", headers=auth).json] == [
        sid
    ]
    response = client.delete(f"/api/retention/holds/{sid}", json={}, headers=auth)
    assert response.status_code == 422
    response = client.delete(
        f"/api/retention/holds/{sid}", json={"reason": "case closed"}, headers=auth
    )
    assert response.status_code == 200
    assert response.get_json()["released_by"] == "audit"
    assert client.get("/api/retention/holds", headers=auth).json == []
    missing = client.delete(
        f"/api/retention/holds/RE{'0' * 32}", json={"reason": "x"}, headers=auth
    )
    assert missing.status_code == 404


def test_the_log_upcoming_and_verify(
    client: FlaskClient, tokens: dict[str, str], add_recording: AddRecording
) -> None:
    soon = add_recording(datetime(2025, 12, 5, 9, tzinfo=UTC))  # due 5 March 2026
    later = add_recording(datetime(2026, 2, 10, 9, tzinfo=UTC))  # due 10 May 2026
    auth = bearer(tokens["compliance"])
    entries = client.get("/api/retention/log", headers=auth).get_json()
    assert [e["event"] for e in entries] == ["stored", "stored"]
    assert {"at", "event", "recording_sid", "hash"} <= set(entries[0])
    assert entries[0]["seq"] < entries[1]["seq"]  # oldest first
    since = client.get("/api/retention/log?since=2026-01-01", headers=auth).get_json()
    assert [e["recording_sid"] for e in since] == [later]
    assert client.get("/api/retention/log?since=yesterday", headers=auth).status_code == 400
    due = client.get("/api/retention/upcoming?days=7", headers=auth).get_json()
    assert [d["recording_sid"] for d in due] == [soon]
    assert client.get("/api/retention/upcoming?days=-1", headers=auth).status_code == 400
    result = client.post("/api/retention/verify", headers=auth).get_json()
    assert result["ok"] is True and result["problems"] == []
    assert result["head"] == f"{entries[1]['seq']}:{entries[1]['hash']}"
    result = client.post("/api/retention/verify", json={"sample": 1}, headers=auth).get_json()
    assert result["ok"] is True


def test_verify_reports_problems_in_words_and_an_outage_as_such(
    app: Flask,
    client: FlaskClient,
    tokens: dict[str, str],
    add_recording: AddRecording,
    runtime: Runtime,
) -> None:
    sid = add_recording()
    auth = bearer(tokens["compliance"])
    root = runtime.settings.recordings_url.removeprefix("file:")
    from pathlib import Path

    [object_path] = list(Path(root).rglob(f"{sid}.wav"))
    object_path.write_bytes(b"not the audio")
    result = client.post("/api/retention/verify", headers=auth).get_json()
    assert result["ok"] is False
    assert any(sid in p and "checksum" in p for p in result["problems"])
    # The whole directory gone: an outage, one error naming the setting, not a mismatch each.
    import shutil

    shutil.rmtree(root)
    response = client.post("/api/retention/verify", headers=auth)
    assert response.status_code == 503
    assert "RECORDINGS_URL" in response.get_json()["error"]


def test_head_tells_the_size_without_a_body(
    client: FlaskClient, tokens: dict[str, str], add_recording: AddRecording
) -> None:
    sid = add_recording()
    _status, body = ask(client, tokens["compliance"], sid)
    response = client.head(path_of(body["url"]))
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(AUDIO))
    assert response.data == b""
