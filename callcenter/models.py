"""The schema: directory, absences, calendar changes, calls, callbacks, recordings, retention.

Twilio SIDs are natural unique keys so that every callback write can be idempotent.
Every datetime is timezone-aware UTC (`UTCDateTime`); local dates are stored as dates.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db import Base, JSONText, UTCDateTime, utcnow

# SQLite ignores the BIGINT/INTEGER difference for rowid; PostgreSQL wants BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RingGroup(Base):
    __tablename__ = "ring_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(20), default="sequential")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(
        order_by="GroupMember.position", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        CheckConstraint("strategy IN ('sequential', 'simultaneous')", name="ck_group_strategy"),
    )


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("ring_groups.id"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)

    staff: Mapped[Staff] = relationship(lazy="joined")


class Line(Base):
    """A Twilio number and where its calls go."""

    __tablename__ = "lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    target_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    target_group_id: Mapped[int | None] = mapped_column(ForeignKey("ring_groups.id"))
    # Rung when the target and every substitute are away or do not answer.
    overflow_group_id: Mapped[int | None] = mapped_column(ForeignKey("ring_groups.id"))
    hours: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "(target_staff_id IS NULL) <> (target_group_id IS NULL)", name="ck_line_one_target"
        ),
    )


class Absence(Base):
    __tablename__ = "absences"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    substitute_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    staff: Mapped[Staff] = relationship(foreign_keys=[staff_id], lazy="joined")
    substitute: Mapped[Staff] = relationship(foreign_keys=[substitute_id], lazy="joined")

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ck_absence_order"),
        CheckConstraint("staff_id <> substitute_id", name="ck_absence_not_self"),
        Index("ix_absences_window", "starts_at", "ends_at"),
    )


class HoursChange(Base):
    """A one-off change of hours for one local date: other hours, or closed, with a message."""

    __tablename__ = "hours_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    # None means closed all day; otherwise "HH:MM-HH:MM".
    hours: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id"))
    from_number: Mapped[str] = mapped_column(String(40))
    to_number: Mapped[str] = mapped_column(String(40))
    # The person or group the line is meant to reach, as "staff:KEY" or "group:KEY".
    intended: Mapped[str | None] = mapped_column(String(60))
    # Who was dialled, in order, and why: [{"staff": KEY, "for": KEY|None, "reason": ...}, ...].
    plan: Mapped[list[list[dict[str, Any]]]] = mapped_column(JSONText, default=list)
    # Index into `plan` of the step being dialled (sequential groups advance it).
    step: Mapped[int] = mapped_column(Integer, default=0)
    routing_note: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(String(200))
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(24), default="in-progress")
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    as_substitute: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ring_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Loaded only when asked for: the webhooks load calls on every callback and never need it.
    answered_by: Mapped[Staff | None] = relationship(lazy="select")


class CallEvent(Base):
    """One Twilio callback about a call, stored once (the dedupe key is unique)."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    leg_sid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONText)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CallbackRequest(Base):
    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id"))
    phone: Mapped[str] = mapped_column(String(40))
    # The local date of the request: one open request per caller per day.
    local_day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(20))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(10), default="open")
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)

    # Loaded only when asked for (lists join it explicitly): callbacks are written on the
    # status-callback path, which never needs the call behind them.
    call: Mapped[Call | None] = relationship(lazy="select")

    __table_args__ = (
        UniqueConstraint("phone", "local_day", name="uq_callback_phone_day"),
        CheckConstraint("status IN ('open', 'done')", name="ck_callback_status"),
    )


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
    claimed_by: Mapped[str | None] = mapped_column(String(100))
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


class Lease(Base):
    """A named lease in the database: one scheduler, one sweep at a time."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DirectoryVersion(Base):
    """One row whose number goes up whenever the directory changes.

    The web process keeps a snapshot of the directory and reloads it only when this number
    moves, so a call costs one tiny read instead of a walk over staff, groups and absences.
    """

    __tablename__ = "directory_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
