"""The named states of a recording and of the claims on it; values are what the rows store."""

from __future__ import annotations

from enum import StrEnum


class RecordingStatus(StrEnum):
    """A recording moves pending -> stored -> deleted, or is closed absent / failed."""

    PENDING = "pending"
    STORED = "stored"
    ABSENT = "absent"
    FAILED = "failed"
    DELETED = "deleted"


class ClaimKind(StrEnum):
    """Who holds a claim on a recording row (`recordings.claim_kind`), whatever its holder id."""

    INGEST = "ingest"
    RECONCILE = "reconcile"
    SWEEP = "retention-sweep"


class AccessPurpose(StrEnum):
    """Why audio leaves storage for a person: to listen in the browser, or to download it."""

    LISTEN = "listen"
    DOWNLOAD = "download"
