"""Calls, the events Twilio reports about them, and callback requests.

Twilio SIDs are natural unique keys so that every callback write can be idempotent.
Every datetime is timezone-aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db import Base, BigId, JSONText, UTCDateTime, utcnow
from callcenter.directory.models import Staff


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id"))
    # As long as any field a webhook accepts: callers come as sip:... and client:... too.
    from_number: Mapped[str] = mapped_column(String(256))
    to_number: Mapped[str] = mapped_column(String(256))
    # The person or group the line is meant to reach, as "staff:KEY" or "group:KEY".
    intended: Mapped[str | None] = mapped_column(String(60))
    # Who was dialled, in order, and why: [{"staff": KEY, "for": KEY|None, "reason": ...}, ...].
    plan: Mapped[list[list[dict[str, Any]]]] = mapped_column(JSONText, default=list)
    # Index into `plan` of the step being dialled (sequential groups advance it).
    step: Mapped[int] = mapped_column(Integer, default=0)
    routing_note: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(String(200))
    # Whether the call's dial records (the line's switch when the call came in).
    recorded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The caller's rating of an answered conversation, 1-5 on the keypad; never on a recording.
    survey: Mapped[int | None] = mapped_column(Integer)
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
    phone: Mapped[str] = mapped_column(String(256))
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
