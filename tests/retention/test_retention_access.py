"""Listening only with a stated reason: `accessed` is on the record before any audio is read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callcenter.adapters.storage import LocalStorage
from callcenter.audit import log as retention_log
from callcenter.audit import notes
from callcenter.db import transaction
from callcenter.recordings import holds
from callcenter.runtime import Runtime
from retention.sweep import sweep
from tests.cli import Result
from tests.cli import run as run_cli
from tests.retention.conftest import AddRecording, entries

Invoke = Callable[..., Result]
LONG_AGO = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def run(
    env: dict[str, str],
    rt: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Invoke:
    cli_env = {**env, "TWILIO_API_BASE_URL": rt.settings.twilio_api_base_url, "USER": "auditor"}
    return lambda *args: run_cli(capsys, monkeypatch, cli_env, *args)


def test_access_logs_who_why_and_purpose_before_the_first_byte_is_read(
    run: Invoke,
    rt: Runtime,
    add_recording: AddRecording,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recording = add_recording(datetime.now(UTC))
    seen_at_open: list[int] = []
    real_open = LocalStorage.open

    def spying_open(self: LocalStorage, key: str) -> Any:
        # What another connection sees the moment the audio is opened: the entry is committed.
        seen_at_open.append(len(entries(rt.sessions, "accessed")))
        return real_open(self, key)

    monkeypatch.setattr(LocalStorage, "open", spying_open)
    out = tmp_path / "call.wav"
    result = run(
        "recordings", "access", recording.recording_sid,
        "--reason", "Quality review Q4", "--purpose", "download", "--output", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert seen_at_open == [1]
    assert out.read_bytes() == rt.storage.open(recording.storage_key or "").read()
    [accessed] = entries(rt.sessions, "accessed")
    assert (accessed.actor, accessed.recording_sid) == ("auditor", recording.recording_sid)
    assert accessed.details["purpose"] == "download"
    assert "reason" not in accessed.details
    with rt.sessions() as session:
        assert notes.text_of(session, accessed.details["reason_note"]) == "Quality review Q4"
        assert list(retention_log.check_chain(retention_log.iter_entries(session))) == []


def test_access_without_a_reason_is_refused_and_nothing_is_logged_or_written(
    run: Invoke, rt: Runtime, add_recording: AddRecording, tmp_path: Path
) -> None:
    recording = add_recording(datetime.now(UTC))
    out = tmp_path / "call.wav"
    result = run(
        "recordings", "access", recording.recording_sid, "--reason", "  ", "--output", str(out)
    )
    assert result.code == 1 and "a reason is required" in result.err
    assert entries(rt.sessions, "accessed") == []
    assert not out.exists()


def test_a_deleted_recording_cannot_be_asked_for(
    run: Invoke, rt: Runtime, add_recording: AddRecording, tmp_path: Path
) -> None:
    recording = add_recording(LONG_AGO)
    assert sweep(rt, now=datetime.now(UTC)).deleted == 1
    result = run(
        "recordings", "access", recording.recording_sid, "--reason", "x",
        "--output", str(tmp_path / "a.wav"),
    )  # fmt: skip
    assert result.code == 1 and "was deleted" in result.err
    assert entries(rt.sessions, "accessed") == []


def test_a_held_recording_can_be_listened_to_and_says_so(
    run: Invoke, rt: Runtime, add_recording: AddRecording, tmp_path: Path
) -> None:
    recording = add_recording(datetime.now(UTC))
    with transaction(rt.sessions) as session:
        holds.place(
            session, recording.recording_sid, reason="Case 9", actor="lex", now=datetime.now(UTC)
        )
    result = run(
        "recordings", "access", recording.recording_sid, "--reason", "Case 9 review",
        "--output", str(tmp_path / "a.wav"),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "(on legal hold)" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--purpose", "stream"], "--purpose"),
        (["--by", "Jānis Bērziņš"], "user handle"),
    ],
)
def test_bad_access_arguments_are_one_line(
    run: Invoke,
    rt: Runtime,
    add_recording: AddRecording,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    recording = add_recording(datetime.now(UTC))
    result = run(
        "recordings", "access", recording.recording_sid, "--reason", "x",
        "--output", str(tmp_path / "a.wav"), *args,
    )  # fmt: skip
    assert result.code != 0 and message in result.err
    assert entries(rt.sessions, "accessed") == []
