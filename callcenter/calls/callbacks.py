"""Callback requests: a caller who could not be helped is called back by a due date.

One request per caller per local day, not one per attempt. Due in
`CALLBACK_WORKING_DAYS` working days by the company's Latvian calendar.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, false, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from callcenter.calls.intake import company_hours
from callcenter.calls.listing import own_calls
from callcenter.calls.models import Call, CallbackRequest
from callcenter.db import Prepared
from callcenter.directory.models import Staff
from callcenter.settings import Settings

REASONS = ("after-hours", "missed", "abandoned", "requested")


class CallbackError(ValueError):
    """A callback change refused, with the reason to show."""


def due_for(session: Session, settings: Settings, at: datetime) -> datetime:
    return company_hours(session, settings, at).add_working_days(at, settings.callback_working_days)


def request_callback(
    session: Session,
    settings: Settings,
    *,
    phone: str,
    reason: str,
    now: datetime,
    call: Call | None = None,
) -> CallbackRequest:
    """Open (or keep) the caller's request for today and return it."""
    if reason not in REASONS:
        raise ValueError(f"unknown callback reason {reason!r}")
    day = now.astimezone(settings.timezone).date()
    existing = session.scalar(
        select(CallbackRequest).where(
            CallbackRequest.phone == phone, CallbackRequest.local_day == day
        )
    )
    if existing is None:
        request = CallbackRequest(
            phone=phone,
            local_day=day,
            reason=reason,
            requested_at=now,
            due_at=due_for(session, settings, now),
            status="open",
            call_id=call.id if call else None,
            line_id=call.line_id if call else None,
        )
        try:
            with session.begin_nested():
                session.add(request)
            return request
        except IntegrityError:
            existing = session.scalar(
                select(CallbackRequest).where(
                    CallbackRequest.phone == phone, CallbackRequest.local_day == day
                )
            )
            assert existing is not None
    if existing.status == "done":
        existing.status = "open"
        existing.done_at = None
        existing.due_at = due_for(session, settings, now)
    if reason == "requested":
        existing.reason = reason
    return existing


def list_callbacks(
    session: Session,
    *,
    status: str | None = None,
    overdue_at: datetime | None = None,
    own: Staff | None = None,
    nothing: bool = False,
) -> Sequence[CallbackRequest]:
    """Callback requests, soonest due first; `own`: only those of a staff member's calls."""
    query = (
        select(CallbackRequest)
        .options(joinedload(CallbackRequest.call))
        .order_by(CallbackRequest.due_at, CallbackRequest.id)
    )
    if status is not None:
        query = query.where(CallbackRequest.status == status)
    if overdue_at is not None:
        query = query.where(CallbackRequest.status == "open", CallbackRequest.due_at < overdue_at)
    if own is not None:
        query = query.where(CallbackRequest.call_id.in_(select(Call.id).where(own_calls(own))))
    if nothing:
        query = query.where(false())
    return session.scalars(query).all()


def mark_done(
    session: Session, request_id: int, *, now: datetime, note: str | None = None
) -> CallbackRequest:
    request = session.get(CallbackRequest, request_id)
    if request is None:
        raise CallbackError(f"no callback request {request_id}")
    if request.status == "done":
        raise CallbackError(f"callback request {request_id} is already done")
    request.status = "done"
    request.done_at = now
    request.note = note
    return request


# Built once (every answered call runs it): the caller's open requests up to a call's start.
_OPEN_FROM_CALLER = (
    select(CallbackRequest)
    .outerjoin(Call, Call.id == CallbackRequest.call_id)
    .where(
        CallbackRequest.phone == bindparam("phone"),
        CallbackRequest.status == "open",
        or_(
            Call.started_at <= bindparam("started_at"),
            and_(
                CallbackRequest.call_id.is_(None), CallbackRequest.requested_at <= bindparam("now")
            ),
        ),
    )
)


# Whether the caller has any such request at all: every answered call asks, and most callers
# have none, so the ORM's loads (the call, its requests) are left to the few who do.
_ANY_OPEN_FROM_CALLER = Prepared(
    _OPEN_FROM_CALLER.with_only_columns(CallbackRequest.id, maintain_column_froms=False).limit(1)
)


def any_open_on_answer(
    session: Session, *, phone: str, started_at: datetime, now: datetime
) -> bool:
    """Tell whether `close_on_answer` would close anything for a call from `phone`."""
    if session.new or session.dirty:
        # The query runs on the connection, past the session: what it holds goes first.
        session.flush()
    found = _ANY_OPEN_FROM_CALLER.scalar(
        session, {"phone": phone, "started_at": started_at, "now": now}
    )
    return found is not None


def close_on_answer(session: Session, call: Call, *, now: datetime) -> list[CallbackRequest]:
    """Close the caller's open requests from this call or earlier ones: they got through.

    A request from a call that started later stays open: a late event about an earlier call
    says nothing about it.
    """
    rows = session.scalars(
        _OPEN_FROM_CALLER, {"phone": call.from_number, "started_at": call.started_at, "now": now}
    ).all()
    for request in rows:
        request.status = "done"
        request.done_at = now
        if request.call_id == call.id:
            request.note = f"answered on this call {call.call_sid}"
        else:
            request.note = f"answered on a later call {call.call_sid}"
    return list(rows)


def set_reason(session: Session, call: Call, reason: str) -> None:
    """Correct the reason of the open request this call made, as later events tell more."""
    if reason not in REASONS:
        raise ValueError(f"unknown callback reason {reason!r}")
    request = session.scalar(
        select(CallbackRequest).where(
            CallbackRequest.call_id == call.id, CallbackRequest.status == "open"
        )
    )
    if request is not None and request.reason != "requested":
        request.reason = reason
