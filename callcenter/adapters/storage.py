"""Where recorded audio is kept: local disk (development) or S3 (production).

The one home of boto3. Object keys hold no phone number or name.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import urlsplit

from callcenter.settings import Settings

# Reads and re-reads go in pieces this big: memory stays flat whatever the object's size.
READ_CHUNK_BYTES = 1024 * 1024
# S3 needs parts of at least 5 MiB (but the last); one part is buffered at a time, so this is
# the upload's memory bound. 8 MiB parts allow 80 GB objects within S3's 10,000-part limit.
S3_PART_BYTES = 8 * 1024 * 1024
# S3 refuses a DeleteObjects request with more keys than this.
S3_DELETE_BATCH = 1000

# Keys are relative, '/'-separated, made of safe characters: no '..', no absolute paths.
_KEY = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9._/-]{1,400}$")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DeleteOutcome:
    """What deleting one key did: `error` is None when no version of it is left."""

    key: str
    versions_deleted: int
    error: str | None = None


class Storage(Protocol):
    url: str

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        """Write an object from chunks without holding it in memory; return size and SHA-256.

        If the iterator raises, no object is left behind under `key` (and an existing one is
        not replaced).
        """

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading (raises KeyError when it does not exist)."""

    def size(self, key: str) -> int | None:
        """Return the object's size in bytes without reading it, or None when it does not exist."""

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """Open bytes `start` to `end` (both included) of an object (KeyError when missing).

        Rules: 0 <= start <= end < size; only those bytes are read from the backend, so a
        browser seeking in a long recording costs what it plays, not the whole object.
        """

    def stat(self, key: str) -> StoredObject | None:
        """Return the object's size and SHA-256 (recomputed from its bytes), or None."""

    def exists(self, key: str) -> bool:
        """Tell cheaply whether the object exists (no bytes are read)."""

    def versions_left(self, key: str) -> int:
        """Count what is left of a key: every version and delete marker (1 or 0 on disk)."""

    def delete_all(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        """Delete every version of each key, in batches the backend allows; report per key."""

    def check(self) -> None:
        """Raise if the storage cannot be reached or written (health check)."""

    def probe(self) -> None:
        """Raise StorageUnavailable if the storage cannot be reached; change nothing."""


class StorageUnavailable(Exception):
    """The storage itself cannot be used (unreachable, missing, refused): not one object's fault.

    The message is plain words naming RECORDINGS_URL, so that a person fixes the setting or the
    service instead of reading every recording as missing.
    """

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"storage at RECORDINGS_URL={url} is unavailable: {problem}")
        self.problem = problem


# botocore's exceptions that mean "the service cannot be used", by name (botocore is imported
# lazily, and only here): the endpoint unreachable or slow, no or refused credentials.
_OUTAGE_ERRORS = {
    "EndpointConnectionError": "the endpoint cannot be reached",
    "ConnectTimeoutError": "connecting to the endpoint timed out",
    "ConnectionClosedError": "the endpoint closed the connection",
    "ReadTimeoutError": "the endpoint did not answer in time",
    "NoCredentialsError": "no credentials were found",
    "PartialCredentialsError": "the credentials are incomplete",
}
_OUTAGE_CODES = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access was refused (check the credentials and the bucket policy)",
    "InvalidAccessKeyId": "the access key is not known",
    "SignatureDoesNotMatch": "the secret key is wrong",
    "ExpiredToken": "the credentials have expired",
    "403": "access was refused (check the credentials and the bucket policy)",
}


def outage(exc: BaseException) -> str | None:
    """Return what is wrong with the storage as a whole if `exc` says so, else None."""
    if isinstance(exc, StorageUnavailable):
        return exc.problem
    for kind in type(exc).__mro__:
        if kind.__name__ in _OUTAGE_ERRORS:
            return _OUTAGE_ERRORS[kind.__name__]
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return _OUTAGE_CODES.get(code)
    return None


def check_key(key: str) -> str:
    """Return the key if it is a safe relative object key; raise ValueError otherwise."""
    if not _KEY.match(key):
        raise ValueError(f"unsafe object key {key!r}")
    return key


class LocalStorage:
    """Objects as files under a directory; writes are atomic and durable."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = f"file:{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        # A temporary file in the same directory, renamed over the key only once complete and
        # on disk: a reader or a crash never sees half an object.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    if not chunk:
                        continue
                    tmp.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(path.parent)
        return StoredObject(key, size, digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise KeyError(key) from None

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        _check_range(start, end)
        handle = self.open(key)
        handle.seek(start)
        return cast(BinaryIO, _Bounded(handle, end - start + 1))

    def stat(self, key: str) -> StoredObject | None:
        try:
            handle = self.open(key)
        except KeyError:
            return None
        digest = hashlib.sha256()
        size = 0
        with handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        return StoredObject(key, size, digest.hexdigest())

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _partials(self, path: Path) -> list[Path]:
        # Temporary files of uploads cut short by a crash (a clean failure removes its own):
        # partial audio, so retention must find and remove them with the object.
        return sorted(path.parent.glob(f".{path.name}.*.part"))

    def versions_left(self, key: str) -> int:
        path = self._path(key)
        return (1 if path.is_file() else 0) + len(self._partials(path))

    def delete_all(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        outcomes = []
        touched: set[Path] = set()
        for key in keys:
            path = self._path(key)
            removed = 0
            try:
                for partial in [*self._partials(path), path]:
                    if partial.is_file():
                        partial.unlink()
                        removed += 1
            except OSError as exc:
                outcomes.append(
                    DeleteOutcome(key, removed, f"{type(exc).__name__}: {exc.strerror}")
                )
            else:
                outcomes.append(DeleteOutcome(key, removed))
            if removed:
                touched.add(path.parent)
        # A removal is durable only once its directory entry is on disk: one fsync per
        # directory, before the caller records the deletions, covers the whole batch.
        for directory in touched:
            _fsync_dir(directory)
        return outcomes

    def probe(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(self.url, f"the directory {self.root} does not exist")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StorageUnavailable(self.url, f"the directory {self.root} cannot be read")

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=self.root, prefix=".healthcheck.")
        os.close(fd)
        os.unlink(probe)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ValueError(f"bad byte range {start}-{end}")


class _Bounded(io.RawIOBase):
    """At most `limit` bytes of an open file, from where it stands; closing closes the file."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self._inner = inner
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._left)
        if want <= 0:
            return 0
        piece = self._inner.read(want)
        n = len(piece)
        view[:n] = piece
        self._left -= n
        return n

    def close(self) -> None:
        self._inner.close()
        super().close()


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (for bodies of unknown length)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class S3Storage:
    """Objects in an S3 bucket under a prefix; every version counts when deleting."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        server_side_encryption: str | None = None,
        kms_key_id: str | None = None,
        client: Any = None,
        part_bytes: int = S3_PART_BYTES,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.part_bytes = part_bytes
        self._extra: dict[str, str] = {}
        if server_side_encryption:
            self._extra["ServerSideEncryption"] = server_side_encryption
        if kms_key_id:
            self._extra["SSEKMSKeyId"] = kms_key_id
        if client is None:
            # botocore and boto3 are imported when S3 is used (not to dodge a cycle): they cost
            # every command a third of a second at start, and local storage needs neither.
            from botocore.config import Config

            # Built once: the client is thread-safe and keeps its connections. boto3 reads
            # AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 and the credential chain by itself.
            client = _boto3_session().client(
                "s3",
                config=Config(
                    connect_timeout=10,
                    read_timeout=60,
                    retries={"max_attempts": 5, "mode": "standard"},
                ),
            )
        self.client = client

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        name = self._name(key)
        digest = hashlib.sha256()
        size = 0

        def counted() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                if chunk:
                    digest.update(chunk)
                    size += len(chunk)
                    yield chunk

        reader = _ChunkReader(counted())
        first = _read_part(reader, self.part_bytes)
        if len(first) < self.part_bytes:
            # Small enough for one request; the whole iterator has been read without error.
            self.client.put_object(Bucket=self.bucket, Key=name, Body=first, **self._extra)
            return StoredObject(key, size, digest.hexdigest())
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=name, **self._extra)
        upload_id = upload["UploadId"]
        try:
            parts = []
            part = first
            number = 1
            while part:
                answer = self.client.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=part
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                # Drop the sent part before reading the next: one part in memory at a time.
                del part
                part = _read_part(reader, self.part_bytes)
                number += 1
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # An aborted upload leaves no object and no billed parts behind.
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise
        return StoredObject(key, size, digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None
        return cast(BinaryIO, answer["Body"])

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(answer["ContentLength"])

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        _check_range(start, end)
        try:
            # S3 reads only the asked bytes (HTTP Range on GetObject); the body streams.
            answer = self.client.get_object(
                Bucket=self.bucket, Key=self._name(key), Range=f"bytes={start}-{end}"
            )
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None
        return cast(BinaryIO, answer["Body"])

    def stat(self, key: str) -> StoredObject | None:
        try:
            body = self.open(key)
        except KeyError:
            return None
        digest = hashlib.sha256()
        size = 0
        try:
            while chunk := body.read(READ_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        finally:
            body.close()
        return StoredObject(key, size, digest.hexdigest())

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _versions(self, name: str) -> list[dict[str, str]]:
        """List every version and delete marker of exactly `name` (not of longer keys)."""
        found: list[dict[str, str]] = []
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=name):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item["Key"] == name:
                    found.append({"Key": name, "VersionId": item["VersionId"]})
        return found

    def versions_left(self, key: str) -> int:
        return len(self._versions(self._name(key)))

    def delete_all(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        names = {key: self._name(key) for key in keys}
        by_name = {name: key for key, name in names.items()}
        targets: list[dict[str, str]] = []
        listed: dict[str, int] = {}
        errors: dict[str, str] = {}
        for key, name in names.items():
            try:
                versions = self._versions(name)
            except Exception as exc:
                errors[key] = f"listing versions failed: {type(exc).__name__}: {exc}"
                continue
            listed[key] = len(versions)
            targets.extend(versions)
        failed: dict[str, int] = {}
        for start in range(0, len(targets), S3_DELETE_BATCH):
            batch = targets[start : start + S3_DELETE_BATCH]
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except Exception as exc:
                for item in batch:
                    key = by_name[item["Key"]]
                    failed[key] = failed.get(key, 0) + 1
                    errors.setdefault(key, f"{type(exc).__name__}: {exc}")
                continue
            # DeleteObjects answers 200 even when some keys failed: the failures are listed.
            for error in answer.get("Errors", []):
                key = by_name.get(error.get("Key", ""), error.get("Key", "?"))
                failed[key] = failed.get(key, 0) + 1
                errors.setdefault(
                    key, f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
                )
        return [
            DeleteOutcome(key, listed.get(key, 0) - failed.get(key, 0), errors.get(key))
            for key in keys
        ]

    def probe(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            problem = outage(exc)
            if problem is None and getattr(exc, "response", None):
                # head_bucket answers a bare 404 for a bucket that does not exist.
                code = str(exc.response.get("Error", {}).get("Code", ""))  # type: ignore[attr-defined]
                problem = "the bucket does not exist" if code in ("404", "NotFound") else None
            if problem is None:
                raise
            raise StorageUnavailable(self.url, problem) from exc

    def check(self) -> None:
        # head_bucket and not a probe write: in a versioned bucket every probe would leave a
        # version and a delete marker behind, forever, once a minute.
        self.client.head_bucket(Bucket=self.bucket)


@functools.cache
def _boto3_session() -> Any:
    """One boto3 session per process: it parses the service models once (0.1 s a client)."""
    import boto3

    return boto3.session.Session()


def _read_part(reader: _ChunkReader, size: int) -> bytearray:
    """Read up to `size` bytes into one buffer, fewer only at the end of the stream."""
    # Grown as data comes (a small recording costs a small buffer); large buffers grow in place
    # (realloc/mremap), so the part's bytes exist about once in memory.
    buffer = bytearray()
    while len(buffer) < size:
        piece = reader.read(min(READ_CHUNK_BYTES, size - len(buffer)))
        if not piece:
            break
        buffer += piece
    return buffer


def open_storage(settings: Settings) -> Storage:
    """Open the storage RECORDINGS_URL names: `file:PATH` or `s3://bucket/prefix`."""
    url = settings.recordings_url
    if url.startswith("file:"):
        return LocalStorage(url[len("file:") :])
    if url.startswith("s3://"):
        parts = urlsplit(url)
        return S3Storage(
            parts.netloc,
            parts.path,
            server_side_encryption=settings.s3_server_side_encryption,
            kms_key_id=settings.s3_kms_key_id,
        )
    raise ValueError(f"RECORDINGS_URL must be file:PATH or s3://bucket/prefix, got {url!r}")
