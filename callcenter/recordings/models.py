"""Recordings and the legal holds on them.

Twilio SIDs are natural unique keys so that every callback write can be idempotent.
Every datetime is timezone-aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db import Base, BigId, UTCDateTime, utcnow


class Recording(Base):
    """One Twilio recording and the life of its audio in our storage."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    # pending -> stored -> deleted; or absent / failed, closed without audio.
    status: Mapped[str] = mapped_column(String(12), default="pending")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # started_at + RETENTION_MONTHS calendar months in local wall time; computed once.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(40))
    error_code: Mapped[str | None] = mapped_column(String(10))
    storage_key: Mapped[str | None] = mapped_column(String(400))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which process holds the row (a holder id, for people to read) and what kind of work it
    # is (ClaimKind): rules ask the kind, never parse the holder.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_kind: Mapped[str | None] = mapped_column(String(20))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'stored', 'absent', 'failed', 'deleted')",
            name="ck_recording_status",
        ),
        # The sweep reads only what is due and not yet gone: its cost follows what is due.
        Index(
            "ix_recordings_due",
            "due_at",
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        # Ingestion claims pending rows in order of their next attempt.
        Index(
            "ix_recordings_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class LegalHold(Base):
    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(100))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(100))
    release_reason: Mapped[str | None] = mapped_column(Text)

    recording: Mapped[Recording] = relationship(lazy="joined")
