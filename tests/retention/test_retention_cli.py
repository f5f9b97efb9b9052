"""`callcenter retention ...` as an operator runs it: exit codes, one-line errors, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from callcenter.recordings import verification as verify_module
from callcenter.recordings.models import Recording
from callcenter.runtime import Runtime
from retention import scheduler
from tests.cli import Result
from tests.cli import run as run_cli
from tests.fakes.twilio_api import FakeTwilio
from tests.retention.conftest import AddRecording, entries, reload
from tests.retention.test_retention_verify import tamper

LONG_AGO = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)


Invoke = Callable[..., Result]


@pytest.fixture
def run(
    env: dict[str, str],
    rt: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Invoke:
    cli_env = {
        **env,
        "TWILIO_API_BASE_URL": rt.settings.twilio_api_base_url,
        "USER": "compliance-officer",
    }
    return lambda *args: run_cli(capsys, monkeypatch, cli_env, *args)


def test_dry_run_lists_what_would_go_and_changes_nothing(
    run: Invoke, rt: Runtime, add_recording: AddRecording
) -> None:
    due = add_recording(LONG_AGO)
    held = add_recording(LONG_AGO, on_hold=True)
    add_recording(datetime.now(UTC))
    before = len(entries(rt.sessions))
    result = run("retention", "run", "--dry-run")
    assert result.code == 0
    assert f"would delete  {due.recording_sid}" in result.out
    assert f"held          {held.recording_sid}" in result.out
    assert "dry run: 1 would be deleted, 1 held; nothing was changed" in result.out
    assert len(entries(rt.sessions)) == before


def test_dry_run_pages_through_every_batch_once(
    run: Invoke, rt: Runtime, add_recording: AddRecording
) -> None:
    # The command's own loop over batches, as operators run it: one recording per batch.
    due = [add_recording(LONG_AGO + timedelta(minutes=minute)) for minute in range(3)]
    result = run("retention", "run", "--dry-run", "--batch-size", "1")
    assert result.code == 0
    listed = [line.split()[2] for line in result.out.splitlines() if line.startswith("would")]
    assert listed == [recording.recording_sid for recording in due]
    assert "dry run: 3 would be deleted, 0 held; nothing was changed" in result.out
    with rt.sessions() as session:
        statuses = {r.status for r in session.scalars(select(Recording))}
    assert statuses == {"stored"}


def test_run_deletes_what_is_due(run: Invoke, rt: Runtime, add_recording: AddRecording) -> None:
    due = add_recording(LONG_AGO)
    kept = add_recording(datetime.now(UTC) - timedelta(days=1))
    result = run("retention", "run")
    assert result.code == 0, result.err
    assert "retention run: 1 deleted, 0 failed, 0 held" in result.out
    assert reload(rt.sessions, due.recording_sid).status == "deleted"
    assert reload(rt.sessions, kept.recording_sid).status == "stored"


def test_run_with_failures_exits_non_zero(
    run: Invoke, rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio
) -> None:
    recording = add_recording(LONG_AGO, twilio_copy=True)
    twilio.fail("delete", recording.recording_sid, status=500)
    result = run("retention", "run")
    assert result.code == 1
    assert result.err.strip().splitlines()[-1] == (
        "callcenter: 1 deletions failed (logged as delete_failed); they are retried at the next run"
    )


def test_hold_release_and_list(run: Invoke, rt: Runtime, add_recording: AddRecording) -> None:
    recording = add_recording(LONG_AGO)
    sid = recording.recording_sid
    result = run("retention", "hold", sid, "--reason", "Case 2026/17")
    assert result.code == 0, result.err
    assert result.out.strip() == f"hold placed on {sid} by compliance-officer"

    listed = run("retention", "holds", "--json")
    [hold] = json.loads(listed.out)
    assert (hold["recording_sid"], hold["reason"], hold["placed_by"]) == (
        sid,
        "Case 2026/17",
        "compliance-officer",
    )
    assert run("retention", "run").code == 0
    assert reload(rt.sessions, sid).status == "stored"

    result = run("retention", "release", sid, "--reason", "Case closed", "--by", "auditor")
    assert result.code == 0, result.err
    assert "deleted at the next sweep" in result.out
    assert json.loads(run("retention", "holds", "--json").out) == []
    run("retention", "run")
    assert reload(rt.sessions, sid).status == "deleted"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hold", "RE" + "0" * 32, "--reason", "x"), "no recording RE" + "0" * 32),
        (("hold", "{sid}", "--reason", "  "), "a reason is required"),
        (("release", "{sid}", "--reason", "x"), "is not on hold"),
    ],
)
def test_hold_errors_are_one_line_and_non_zero(
    run: Invoke, add_recording: AddRecording, args: tuple[str, ...], message: str
) -> None:
    sid = add_recording(LONG_AGO).recording_sid
    result = run("retention", *(a.format(sid=sid) for a in args))
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert message in result.err


def test_hold_twice_is_refused(run: Invoke, add_recording: AddRecording) -> None:
    sid = add_recording(LONG_AGO).recording_sid
    assert run("retention", "hold", sid, "--reason", "a").code == 0
    again = run("retention", "hold", sid, "--reason", "b")
    assert (again.code, again.err.strip()) == (
        1,
        f"callcenter: recording {sid} is already on hold",
    )


def test_log_as_json_and_csv(run: Invoke, rt: Runtime, add_recording: AddRecording) -> None:
    recording = add_recording(LONG_AGO)
    run("retention", "run")
    as_json = json.loads(run("retention", "log", "--format", "json").out)
    events = [e["event"] for e in as_json]
    assert events == ["stored", "sweep_started", "delete_started", "deleted", "sweep_finished"]
    for entry in as_json:
        assert {"at", "event", "recording_sid", "hash", "prev_hash", "seq", "actor"} <= set(entry)
        at = datetime.fromisoformat(entry["at"])
        assert at.utcoffset() in (timedelta(hours=2), timedelta(hours=3))
    assert as_json[0]["recording_sid"] == recording.recording_sid
    assert as_json[0]["at"] == "2024-01-15T11:35:00+02:00"

    as_csv = run("retention", "log", "--format", "csv").out
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert [r["event"] for r in rows] == events
    assert rows[2]["hash"] == as_json[2]["hash"]

    since = run("retention", "log", "--since", "2024-01-15T11:36:00")
    assert [e["event"] for e in json.loads(since.out)] == events[1:]
    bad = run("retention", "log", "--since", "yesterday")
    assert bad.code == 1 and "--since" in bad.err


def test_verify_is_clean_then_names_each_mismatch(
    run: Invoke, rt: Runtime, engine: Engine, add_recording: AddRecording
) -> None:
    add_recording(LONG_AGO)
    add_recording(datetime.now(UTC))
    run("retention", "run")
    clean = run("retention", "verify")
    assert clean.code == 0, clean.out + clean.err
    assert clean.out.startswith("retention verify: ok: 6 log entries chained")
    assert run("retention", "verify", "--sample", "1").code == 0

    tamper(engine, "UPDATE retention_log SET actor = 'x' WHERE seq = 1")
    broken = run("retention", "verify")
    assert broken.code == 1
    assert broken.out.splitlines() == ["chain: entry 1: content does not match its hash (edited)"]
    assert broken.err.strip() == "callcenter: retention verify: 1 mismatch(es) found"


def test_verify_with_an_earlier_head_finds_entries_cut_off_the_end(
    run: Invoke, rt: Runtime, engine: Engine, add_recording: AddRecording
) -> None:
    add_recording(LONG_AGO)
    add_recording(datetime.now(UTC))
    run("retention", "run")
    clean = run("retention", "verify")
    head = clean.out.strip().rsplit("head: entry ", 1)[1].replace(" ", ":")
    assert run("retention", "verify", "--head", head).code == 0
    # Cutting the tail leaves a chain that is valid in itself: only the earlier head shows it.
    last_seq = int(head.split(":")[0])
    tamper(engine, f"DELETE FROM retention_log WHERE seq = {last_seq}")  # noqa: S608
    assert run("retention", "verify").code == 0
    cut = run("retention", "verify", "--head", head)
    assert cut.code == 1
    assert f"chain: entry {last_seq}: missing (entries were cut off)" in cut.out
    assert run("retention", "verify", "--head", "nonsense").code == 1


def test_upcoming_lists_what_goes_when(run: Invoke, add_recording: AddRecording) -> None:
    # Three calendar months are 89 to 92 days: this one is due within the next 4 days.
    soon = add_recording(datetime.now(UTC) - timedelta(days=88))
    add_recording(datetime.now(UTC) - timedelta(days=10))
    rows = json.loads(run("retention", "upcoming", "--days", "14", "--json").out)
    assert [r["recording_sid"] for r in rows] == [soon.recording_sid]
    assert rows[0]["on_hold"] is False
    assert datetime.fromisoformat(rows[0]["due_at"]).utcoffset() is not None
    table = run("retention", "upcoming").out
    assert soon.recording_sid in table and "recording_sid" in table.splitlines()[0]


# A storage outage is not tampering ------------------------------------------------------------


def _verify_with(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    rt: Runtime,
    recordings_url: str,
) -> Result:
    cli_env = {**env, "TWILIO_API_BASE_URL": rt.settings.twilio_api_base_url}
    return run_cli(
        capsys, monkeypatch, {**cli_env, "RECORDINGS_URL": recordings_url}, "retention", "verify"
    )


def test_verify_with_the_storage_directory_gone_says_so_once_and_exits_2(
    env: dict[str, str],
    rt: Runtime,
    add_recording: AddRecording,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for minute in range(3):
        add_recording(datetime.now(UTC) - timedelta(minutes=minute))
    result = _verify_with(capsys, monkeypatch, env, rt, f"file:{tmp_path / 'nowhere'}")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "RECORDINGS_URL" in result.err and "does not exist" in result.err
    assert "mismatch" not in result.out + result.err


def test_verify_with_s3_unreachable_says_so_once_and_exits_2(
    env: dict[str, str],
    rt: Runtime,
    add_recording: AddRecording,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    aws_env: str,
) -> None:
    add_recording(datetime.now(UTC))
    # Nothing listens on this port: connection refused, quickly, on every attempt.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    result = _verify_with(capsys, monkeypatch, env, rt, "s3://recordings-bucket/calls")
    assert result.code == 2
    assert "RECORDINGS_URL=s3://recordings-bucket/calls" in result.err
    assert "cannot be reached" in result.err
    assert "mismatch" not in result.out + result.err


def test_verify_with_a_missing_bucket_says_so_once_and_exits_2(
    env: dict[str, str],
    rt: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    aws_env: str,
) -> None:
    result = _verify_with(capsys, monkeypatch, env, rt, "s3://no-such-bucket-here/calls")
    assert result.code == 2
    assert "the bucket does not exist" in result.err


def test_hold_by_a_full_name_is_refused_in_one_line(
    run: Invoke, add_recording: AddRecording, rt: Runtime
) -> None:
    recording = add_recording(LONG_AGO)
    result = run("retention", "hold", recording.recording_sid, "--reason", "x", "--by", "Jānis B")
    assert result.code != 0
    assert "user handle" in result.err and result.err.count("\n") == 1
    assert entries(rt.sessions, "hold_placed") == []


def test_redact_removes_a_reason_and_verify_reports_the_redaction(
    run: Invoke, add_recording: AddRecording, rt: Runtime
) -> None:
    recording = add_recording(datetime.now(UTC))
    assert run("retention", "hold", recording.recording_sid, "--reason", "Case A").code == 0
    [placed] = entries(rt.sessions, "hold_placed")
    note = placed.details["reason_note"]
    result = run("retention", "redact", str(note), "--reason", "Lawful request 7", "--by", "dpo")
    assert result.code == 0, result.err
    again = run("retention", "redact", str(note), "--reason", "again", "--by", "dpo")
    assert again.code != 0 and "already redacted" in again.err
    verified = run("retention", "verify")
    assert verified.code == 0, verified.out + verified.err
    assert f"redacted: note {note}: redacted on" in verified.out


def test_every_verification_is_kept_in_the_history_newest_first(
    run: Invoke, rt: Runtime, engine: Engine, add_recording: AddRecording
) -> None:
    add_recording(datetime.now(UTC))
    assert run("retention", "verify", "--by", "auditor").code == 0
    tamper(engine, "UPDATE retention_log SET actor = 'x' WHERE seq = 1")
    assert run("retention", "verify", "--sample", "1", "--by", "auditor2").code == 1
    listed = run("retention", "verifications", "--json")
    assert listed.code == 0
    newest, oldest = listed.json()
    assert (newest["by"], newest["ok"], newest["sample"]) == ("auditor2", False, 1)
    assert newest["problems"] == ["chain: entry 1: content does not match its hash (edited)"]
    assert (oldest["by"], oldest["ok"], oldest["problems"]) == ("auditor", True, [])
    assert oldest["head"].startswith("1:")


def test_the_daily_job_keeps_its_verification_too(rt: Runtime, add_recording: AddRecording) -> None:
    add_recording(datetime.now(UTC))
    scheduler.verify_job(rt, datetime.now(UTC))
    with rt.sessions() as session:
        [kept] = verify_module.history(session)
    assert (kept.by, kept.ok, kept.sample) == ("scheduler", True, verify_module.DAILY_SAMPLE)
