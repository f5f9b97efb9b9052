"""The call log and callback requests as people read them: rows, filters, daily counts.

One serializer for the command line (`calls list --json`, `callbacks list --json`), the
console and the JSON API, so the three never disagree on a field. "Own" calls of a staff
member: those they answered, those the line meant for them (`intended`), and those they were
dialled for while away (a substitute answered for them); their callbacks are those of such
calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, Text, false, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from callcenter.calls.models import Call, CallbackRequest
from callcenter.calls.states import Outcome
from callcenter.directory.models import Staff
from callcenter.localtime import local_iso

# The outcomes a call can have, as `calls list` gives them.
OUTCOMES = tuple(str(outcome) for outcome in Outcome)
# Missed, as the console counts it: the caller was not helped although the line was open.
MISSED = frozenset({"no-answer", "busy", "failed", "abandoned"})


def call_row(call: Call, answered_by: str | None, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "call_sid": call.call_sid,
        "from": call.from_number,
        "to": call.to_number,
        "started_at": local_iso(call.started_at, zone),
        "outcome": call.outcome,
        "answered_by": answered_by,
        "as_substitute": call.as_substitute,
        "status": call.status,
        "ended_at": local_iso(call.ended_at, zone),
        "intended": call.intended,
        "routing": call.routing_note,
        "notice": call.notice,
        "recorded": call.recorded,
        "survey": call.survey,
        "ring_seconds": call.ring_seconds,
        "talk_seconds": call.talk_seconds,
    }


def callback_row(item: CallbackRequest, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": item.id,
        "phone": item.phone,
        "call_sid": item.call.call_sid if item.call else None,
        "reason": item.reason,
        "requested_at": local_iso(item.requested_at, zone),
        "due_at": local_iso(item.due_at, zone),
        "status": item.status,
        "done_at": local_iso(item.done_at, zone),
        "note": item.note,
    }


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def own_calls(staff: Staff) -> ColumnElement[bool]:
    """The condition for a staff member's own calls (see the module's docstring)."""
    # `plan` is canonical JSON (sorted keys, no spaces): a leg dialled for someone away
    # carries `"for_key":"KEY"`.
    marker = _like_literal(f'"for_key":"{staff.key}"')
    return or_(
        Call.answered_by_id == staff.id,
        Call.intended == f"staff:{staff.key}",
        type_coerce(Call.plan, Text).like(f"%{marker}%", escape="\\"),
    )


Q = TypeVar("Q", bound=Select)


@dataclass(frozen=True)
class CallFilter:
    since: datetime | None = None
    until: datetime | None = None
    # Calls answered by this staff KEY (the log's "person" filter).
    staff: str | None = None
    outcome: str | None = None
    # Only this staff member's own calls (a staff user's view); None: everyone's.
    own: Staff | None = None
    # A viewer who may see nothing (a staff user with no staff member).
    nothing: bool = False

    def apply(self, query: Q) -> Q:
        if self.nothing:
            return query.where(false())
        if self.since is not None:
            query = query.where(Call.started_at >= self.since)
        if self.until is not None:
            query = query.where(Call.started_at < self.until)
        if self.staff is not None:
            query = query.where(Staff.key == self.staff)
        if self.outcome is not None:
            query = query.where(Call.outcome == self.outcome)
        if self.own is not None:
            query = query.where(own_calls(self.own))
        return query


def _calls_query(where: CallFilter) -> Any:
    return where.apply(select(Call, Staff.key).outerjoin(Staff, Staff.id == Call.answered_by_id))


def list_calls(
    session: Session,
    where: CallFilter,
    *,
    newest_first: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[tuple[Call, str | None]]:
    """Return (call, answering staff KEY) pairs, oldest first unless asked otherwise."""
    order = (Call.started_at.desc(), Call.id.desc()) if newest_first else (Call.started_at, Call.id)
    query = _calls_query(where).order_by(*order).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [(call, key) for call, key in session.execute(query)]


def count_calls(session: Session, where: CallFilter) -> int:
    query = where.apply(
        select(func.count(Call.id))
        .select_from(Call)
        .outerjoin(Staff, Staff.id == Call.answered_by_id)
    )
    return int(session.scalar(query) or 0)


def callback_is_own(session: Session, request: CallbackRequest, staff: Staff) -> bool:
    if request.call_id is None:
        return False
    return (
        session.scalar(select(Call.id).where(Call.id == request.call_id, own_calls(staff)))
        is not None
    )


@dataclass
class DayCounts:
    day: date
    calls: int = 0
    answered: int = 0
    missed: int = 0
    as_substitute: int = 0


def local_day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    opens = datetime.combine(day, time(0), tzinfo=zone)
    return opens, datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def daily_counts(
    session: Session, where: CallFilter, *, first: date, last: date, zone: ZoneInfo
) -> list[DayCounts]:
    """Count calls per local day from `first` to `last` (both included), every day present."""
    opens, _ = local_day_bounds(first, zone)
    _, closes = local_day_bounds(last, zone)
    days = {
        first + timedelta(days=n): DayCounts(first + timedelta(days=n))
        for n in range((last - first).days + 1)
    }
    query = where.apply(
        select(Call.started_at, Call.outcome, Call.as_substitute)
        .select_from(Call)
        .outerjoin(Staff, Staff.id == Call.answered_by_id)
        .where(Call.started_at >= opens, Call.started_at < closes)
    )
    for started_at, outcome, as_substitute in session.execute(query):
        row = days.get(started_at.astimezone(zone).date())
        if row is None:
            continue
        row.calls += 1
        if outcome == "answered":
            row.answered += 1
            if as_substitute:
                row.as_substitute += 1
        elif outcome in MISSED:
            row.missed += 1
    return [days[day] for day in sorted(days)]
