"""Where recorded audio is kept: local disk (development) or S3 (production).

The one home of boto3. Object keys hold no phone number or name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from callcenter.settings import Settings


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
        """Write an object from chunks without holding it in memory; return size and SHA-256."""

    def open(self, key: str) -> BinaryIO:
        """Open an object for reading (raises KeyError when it does not exist)."""

    def stat(self, key: str) -> StoredObject | None:
        """Return the object's size and SHA-256 (recomputed from its bytes), or None."""

    def versions_left(self, key: str) -> int:
        """Count what is left of a key: every version and delete marker (1 or 0 on disk)."""

    def delete_all(self, keys: Sequence[str]) -> list[DeleteOutcome]:
        """Delete every version of each key, in batches the backend allows; report per key."""

    def check(self) -> None:
        """Raise if the storage cannot be reached or written (health check)."""


def open_storage(settings: Settings) -> Storage:
    raise NotImplementedError("storage adapters are being built (issue 4)")
