"""The append-only, hash-chained retention log.

Twilio SIDs are natural unique keys so that every callback write can be idempotent.
Every datetime is timezone-aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db import Base, BigId, JSONText, UTCDateTime


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
