"""Users, their API tokens (kept only as hashes) and failed sign-ins (the lockout's memory).

Every datetime is timezone-aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db import Base, BigId, UTCDateTime, utcnow
from callcenter.directory.models import Staff

ROLES = ("staff", "supervisor", "compliance", "admin")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # The staff member whose absences, calls and callbacks are this user's own.
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # argon2id, with its parameters and salt (the PHC string).
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    staff: Mapped[Staff | None] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(
            "role IN ('staff', 'supervisor', 'compliance', 'admin')", name="ck_user_role"
        ),
    )


class ApiToken(Base):
    """An API token: only the SHA-256 of the token is kept; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(lazy="joined")


class SignInFailure(Base):
    """One failed sign-in for a username (known or not), for the lockout across processes."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_sign_in_failures_username_at", "username", "at"),)
