"""The retention log's vocabulary: every event an entry may name (values as stored)."""

from __future__ import annotations

from enum import StrEnum


class RetentionEvent(StrEnum):
    STORED = "stored"
    PROVIDER_COPY_DELETED = "provider_copy_deleted"
    # Written before storage is touched, so the log tells when a deletion began even if the
    # sweep dies before its `deleted` confirmation.
    DELETE_STARTED = "delete_started"
    DELETED = "deleted"
    DELETE_FAILED = "delete_failed"
    HOLD_PLACED = "hold_placed"
    HOLD_RELEASED = "hold_released"
    SWEEP_STARTED = "sweep_started"
    SWEEP_FINISHED = "sweep_finished"
    ACCESSED = "accessed"
    INGEST_FAILED = "ingest_failed"
    MISSING_OBJECT = "missing_object"
