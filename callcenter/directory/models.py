"""The directory: staff, ring groups, lines, absences, one-off hours changes, its version.

Twilio SIDs are natural unique keys so that every callback write can be idempotent.
Every datetime is timezone-aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

from collections.abc import Iterable
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
    event,
    false,
    true,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from callcenter.db import Base, UTCDateTime, utcnow


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
    # Whether calls are recorded (and the recording notice played): a per-line switch.
    record: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Whether callers are asked to rate an answered conversation the staff side ended.
    survey: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
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


class DirectoryVersion(Base):
    """One row whose number goes up whenever the directory changes.

    The web process keeps a snapshot of the directory and reloads it only when this number
    moves, so a call costs one tiny read instead of a walk over staff, groups and absences.
    """

    __tablename__ = "directory_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


DIRECTORY_MODELS = (Staff, RingGroup, GroupMember, Line, Absence, HoursChange)


def _bump(session: Session, _context: Any, _instances: Any) -> None:
    touched: Iterable[object] = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(obj, DIRECTORY_MODELS) for obj in touched):
        session.execute(
            update(DirectoryVersion)
            .where(DirectoryVersion.id == 1)
            .values(version=DirectoryVersion.version + 1)
        )


# Every directory change, through any session, moves the version in its own transaction. It
# is registered here, with the models, so that no writer can change the directory without it:
# writing a directory row means importing this module.
event.listen(Session, "before_flush", _bump)
