"""Storage adapters: local disk and S3 (moto's server), every version counted and deleted."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.adapters import storage as storage_module
from callcenter.adapters.storage import LocalStorage, S3Storage, Storage, open_storage
from callcenter.settings import load
from tests.fakes.s3 import make_bucket

KEY = "recordings/2026/03/02/RE0123456789abcdef0123456789abcdef.wav"


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def failing(data: bytes) -> Iterator[bytes]:
    yield data
    raise ConnectionError("the source broke off")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["disk", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each contract test runs on both adapters."""
    if request.param == "disk":
        return LocalStorage(tmp_path / "store")
    bucket = request.getfixturevalue("s3_versioned_bucket")
    return S3Storage(bucket, "audio")


def test_put_stat_open_roundtrip(store: Storage) -> None:
    data = bytes(range(256)) * 40
    written = store.put_stream(KEY, chunks(data))
    assert (written.key, written.size, written.sha256) == (KEY, len(data), sha(data))
    assert store.stat(KEY) == written
    with store.open(KEY) as handle:
        assert handle.read() == data
    assert store.exists(KEY)
    assert store.versions_left(KEY) == 1


def test_missing_object(store: Storage) -> None:
    assert store.stat(KEY) is None
    assert not store.exists(KEY)
    assert store.versions_left(KEY) == 0
    with pytest.raises(KeyError):
        store.open(KEY)
    assert store.delete_all([KEY])[0].versions_deleted == 0
    assert store.delete_all([KEY])[0].error is None


def test_failed_write_leaves_no_object_and_keeps_the_old_one(store: Storage) -> None:
    with pytest.raises(ConnectionError):
        store.put_stream(KEY, failing(b"partial"))
    assert store.stat(KEY) is None

    store.put_stream(KEY, [b"good"])
    with pytest.raises(ConnectionError):
        store.put_stream(KEY, failing(b"bad"))
    stat = store.stat(KEY)
    assert stat is not None and stat.sha256 == sha(b"good")


def test_delete_all_removes_the_key_and_nothing_else(store: Storage) -> None:
    store.put_stream(KEY, [b"a"])
    # Keys that share the prefix must survive.
    store.put_stream(KEY + ".bak", [b"b"])
    [outcome] = store.delete_all([KEY])
    assert outcome.error is None and outcome.versions_deleted >= 1
    assert store.versions_left(KEY) == 0
    assert store.exists(KEY + ".bak")


def test_check_passes_on_working_storage(store: Storage) -> None:
    store.check()


@pytest.mark.parametrize("key", ["/etc/passwd", "../x.wav", "a/../../x", "a b.wav", ""])
def test_unsafe_keys_are_refused(store: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        store.put_stream(key, [b"x"])


def test_disk_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    disk = LocalStorage(tmp_path / "store")
    with pytest.raises(ConnectionError):
        disk.put_stream(KEY, failing(b"x" * 10))
    disk.put_stream(KEY, [b"y" * 10])
    files = [p.relative_to(disk.root).as_posix() for p in disk.root.rglob("*") if p.is_file()]
    assert files == [KEY]


def test_disk_check_fails_when_the_directory_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        LocalStorage(blocker / "store").check()


def test_s3_large_object_goes_up_in_parts_with_bounded_buffers(s3_versioned_bucket: str) -> None:
    s3 = S3Storage(s3_versioned_bucket, "audio", part_bytes=5 * 1024 * 1024)
    data = hashlib.sha256(b"seed").digest() * (12 * 1024 * 1024 // 32) + b"tail"
    written = s3.put_stream(KEY, chunks(data, 256 * 1024))
    assert written.sha256 == sha(data)
    head = s3.client.head_object(Bucket=s3_versioned_bucket, Key=f"audio/{KEY}")
    # A multipart ETag ends with the number of parts: 12 MiB + 4 bytes in 5 MiB parts is 3.
    assert head["ETag"].strip('"').endswith("-3")
    assert s3.stat(KEY) == written


def test_s3_failed_multipart_upload_is_aborted(s3_versioned_bucket: str) -> None:
    s3 = S3Storage(s3_versioned_bucket, "audio", part_bytes=5 * 1024 * 1024)

    def source() -> Iterator[bytes]:
        yield b"x" * (11 * 1024 * 1024)
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        s3.put_stream(KEY, source())
    assert s3.versions_left(KEY) == 0
    uploads = s3.client.list_multipart_uploads(Bucket=s3_versioned_bucket)
    assert uploads.get("Uploads", []) == []


def test_s3_delete_all_removes_every_version_and_delete_marker(
    s3_versioned_bucket: str, s3_client: Any
) -> None:
    s3 = S3Storage(s3_versioned_bucket, "audio")
    s3.put_stream(KEY, [b"one"])
    s3.put_stream(KEY, [b"two"])
    # A plain delete in a versioned bucket only hides the data behind a marker.
    s3_client.delete_object(Bucket=s3_versioned_bucket, Key=f"audio/{KEY}")
    assert not s3.exists(KEY)
    assert s3.versions_left(KEY) == 3

    [outcome] = s3.delete_all([KEY])

    assert (outcome.key, outcome.versions_deleted, outcome.error) == (KEY, 3, None)
    assert s3.versions_left(KEY) == 0
    listing = s3_client.list_object_versions(Bucket=s3_versioned_bucket)
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []


def test_s3_delete_all_works_on_an_unversioned_bucket(s3_bucket: str) -> None:
    s3 = S3Storage(s3_bucket, "")
    s3.put_stream(KEY, [b"x"])
    assert s3.versions_left(KEY) == 1
    assert s3.delete_all([KEY])[0].versions_deleted == 1
    assert s3.versions_left(KEY) == 0


def test_s3_delete_all_goes_in_batches(
    s3_versioned_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "S3_DELETE_BATCH", 2)
    s3 = S3Storage(s3_versioned_bucket, "audio")
    keys = [f"recordings/x/RE{i:032d}.wav" for i in range(3)]
    for key in keys:
        s3.put_stream(key, [b"1"])
        s3.put_stream(key, [b"2"])
    outcomes = s3.delete_all(keys)
    assert [(o.key, o.versions_deleted, o.error) for o in outcomes] == [(k, 2, None) for k in keys]
    assert all(s3.versions_left(k) == 0 for k in keys)


def test_s3_delete_all_reports_per_key_errors_from_a_200_answer(s3_client: Any) -> None:
    bucket = make_bucket(s3_client, object_lock=True)
    s3 = S3Storage(bucket, "audio")
    locked, free = KEY, KEY.replace(".wav", "-2.wav")
    s3.put_stream(locked, [b"held"])
    s3.put_stream(free, [b"free"])
    version = s3_client.head_object(Bucket=bucket, Key=f"audio/{locked}")["VersionId"]
    s3_client.put_object_legal_hold(
        Bucket=bucket, Key=f"audio/{locked}", VersionId=version, LegalHold={"Status": "ON"}
    )

    by_key = {o.key: o for o in s3.delete_all([locked, free])}

    assert by_key[free].error is None and by_key[free].versions_deleted == 1
    assert by_key[locked].versions_deleted == 0
    assert "AccessDenied" in (by_key[locked].error or "")
    assert s3.versions_left(locked) == 1
    assert s3.versions_left(free) == 0


def test_s3_server_side_encryption_is_requested(s3_bucket: str, s3_client: Any) -> None:
    s3 = S3Storage(s3_bucket, "audio", server_side_encryption="AES256")
    s3.put_stream(KEY, [b"secret"])
    head = s3_client.head_object(Bucket=s3_bucket, Key=f"audio/{KEY}")
    assert head["ServerSideEncryption"] == "AES256"


def test_s3_check_fails_for_a_missing_bucket(aws_env: str) -> None:
    with pytest.raises(Exception, match=r"404|Not Found|NoSuchBucket"):
        S3Storage("no-such-bucket-here", "audio").check()


def test_open_storage_reads_recordings_url(tmp_path: Path, aws_env: str) -> None:
    disk = open_storage(load({"RECORDINGS_URL": f"file:{tmp_path}/r"}))
    assert isinstance(disk, LocalStorage) and disk.root == tmp_path / "r"
    s3 = open_storage(
        load({"RECORDINGS_URL": "s3://bucket/some/prefix/", "S3_SERVER_SIDE_ENCRYPTION": "AES256"})
    )
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "some/prefix", "s3://bucket/some/prefix")


def test_health_check_reports_storage(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json().items() >= {"database": "ok", "storage": "ok"}.items()
