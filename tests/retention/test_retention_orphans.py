"""Audio that escaped the row: an object uploaded but never marked stored, a partial upload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from callcenter.adapters.storage import LocalStorage
from callcenter.recordings.policy import media_key
from callcenter.runtime import Runtime
from retention.sweep import sweep
from tests.retention.conftest import AddRecording, reload

STARTED = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_object_of_a_recording_never_marked_stored_is_deleted_when_due(
    rt: Runtime, add_recording: AddRecording
) -> None:
    # A crash between the upload and the commit leaves the audio under its key, row pending.
    row = add_recording(STARTED, status="pending")
    key = media_key(row.recording_sid, STARTED)
    rt.storage.put_stream(key, [b"RIFF orphaned audio"])
    assert rt.storage.versions_left(key) == 1

    report = sweep(rt, now=row.due_at - timedelta(seconds=1))
    assert report.deleted == 0 and rt.storage.versions_left(key) == 1

    report = sweep(rt, now=row.due_at + timedelta(seconds=1))
    assert report.deleted == 1
    assert rt.storage.versions_left(key) == 0
    assert reload(rt.sessions, row.recording_sid).status == "deleted"


def test_partial_upload_files_go_with_the_object(rt: Runtime, add_recording: AddRecording) -> None:
    row = add_recording(STARTED)
    assert row.storage_key is not None
    storage = rt.storage
    assert isinstance(storage, LocalStorage)
    path = storage.root / row.storage_key
    partial = Path(path.parent, f".{path.name}.abc123.part")
    partial.write_bytes(b"RIFF half")
    assert storage.versions_left(row.storage_key) == 2

    sweep(rt, now=row.due_at + timedelta(seconds=1))
    assert not path.exists() and not partial.exists()
    assert storage.versions_left(row.storage_key) == 0
