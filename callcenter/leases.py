"""Named leases in the database: one scheduler, one sweep at a time.

A lease is a row in `leases` (name, holder, expires_at). It is taken by a conditional UPDATE
(free or expired or already ours) and, when no row exists yet, by an INSERT that the primary key
lets only one writer win. A holder that dies simply stops renewing and the lease expires, so a
crash never needs a person to clean up. Callers own the transaction; each function here only
flushes, and the caller commits straight away so that the lease is visible to other processes.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import String, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from callcenter.db import Base, UTCDateTime


class Lease(Base):
    """A named lease in the database: one scheduler, one sweep at a time."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def holder_id(kind: str) -> str:
    """Return a holder name unique to this process and call, readable in the `leases` table."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(session: Session, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease `name` for `holder` until now + ttl; tell whether it is ours.

    Rules: a lease held by someone else and not yet expired is refused; an expired one is taken
    over; our own is renewed.
    """
    if _take(session, name, holder, now=now, ttl=ttl):
        return True
    # No row, or a row held by someone else: only an INSERT can still win, and only if no row
    # exists. A savepoint keeps the caller's transaction usable when another writer won.
    try:
        with session.begin_nested():
            session.execute(insert(Lease).values(name=name, holder=holder, expires_at=now + ttl))
    except IntegrityError:
        # Someone inserted first; that may have been this same holder from another thread
        # (the scheduler's jobs renew concurrently), so try the conditional UPDATE once more.
        return _take(session, name, holder, now=now, ttl=ttl)
    return True


def _take(session: Session, name: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name)
        .where((Lease.holder == holder) | (Lease.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def release(session: Session, name: str, holder: str) -> None:
    """Give the lease up, if it is still ours, so the next holder need not wait for expiry."""
    session.execute(
        delete(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .execution_options(synchronize_session=False)
    )
