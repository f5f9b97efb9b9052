"""The append-only, hash-chained retention log.

Twilio SIDs are natural unique keys so that every callback write can be idempotent.
Every datetime is timezone-aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db import Base, BigId, JSONText, UTCDateTime, utcnow


class RetentionEntry(Base):
    """One entry of the append-only, hash-chained retention log. Never updated or deleted."""

    __tablename__ = "retention_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # 1, 2, 3, ... with no gaps; unique, so two writers cannot fork the chain.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(40))
    recording_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSONText)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditNote(Base):
    """Free text that a log entry refers to (a reason), kept beside the chain.

    The chain holds only the note's id and SHA-256, so that a reason naming a person can be
    redacted on a lawful request without editing the append-only log: verification then sees
    a redaction (text gone, `redacted_at` set), not tampering (text that no longer matches).
    """

    __tablename__ = "audit_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redacted_by: Mapped[str | None] = mapped_column(String(64))
    redaction_reason: Mapped[str | None] = mapped_column(Text)


class VerificationRun(Base):
    """One run of `retention verify` (from the command line, the console or the scheduler)."""

    __tablename__ = "verification_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    by: Mapped[str] = mapped_column(String(64))
    # None: every recording was checked; else how many were sampled.
    sample: Mapped[int | None] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    head: Mapped[str | None] = mapped_column(String(90))
    entries: Mapped[int] = mapped_column(BigInteger, default=0)
    problems: Mapped[list[str]] = mapped_column(JSONText, default=list)
