"""A call comes in: decide what the caller hears and who is dialled, and write the call row.

One short transaction, no network calls. A retried webhook (same CallSid) finds the row it
wrote the first time and gets the same answer; it never makes a second row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from callcenter import directory, phones, speech
from callcenter.hours import DEFAULT_HOURS, LatvianCalendar, WorkingHours, parse_hours
from callcenter.models import Call
from callcenter.routing import Plan, Step, plan_for_line
from callcenter.settings import Settings
from callcenter.snapshot import Directory, DirectoryCache

log = logging.getLogger(__name__)

Kind = Literal["connect", "closed", "nobody", "unknown-line"]


@dataclass(frozen=True)
class Answer:
    """What to tell Twilio to do with a call."""

    kind: Kind
    legs: Step = ()
    # Spoken after the notice and before the dial: changed hours in the coming days.
    announcements: tuple[str, ...] = ()
    message: str | None = None
    caller_withheld: bool = False
    notes: tuple[str, ...] = field(default=())


def working_hours(session: Session, settings: Settings, spec: str, now: datetime) -> WorkingHours:
    """Build a line's hours with the changes announced around `now`."""
    today = now.astimezone(settings.timezone).date()
    changes = directory.hours_changes(
        session, today - timedelta(days=1), today + timedelta(days=22)
    )
    return WorkingHours(
        parse_hours(spec), LatvianCalendar(settings.moved_days_off), settings.timezone, changes
    )


def company_hours(session: Session, settings: Settings, now: datetime) -> WorkingHours:
    """The company's own working days, which callback due dates are counted in."""
    return working_hours(session, settings, DEFAULT_HOURS, now)


def notice_label(settings: Settings) -> str:
    """Name the notice served, for the call row: the audio file, or the spoken languages."""
    if settings.notice_audio_url:
        return f"play:{settings.notice_audio_url}"[:200]
    return "say:" + ",".join(item.language for item in settings.notice_languages)


@dataclass(frozen=True)
class CallState:
    """What the answer to a call depends on, whether just decided or read back from its row."""

    to_number: str
    from_number: str
    line_known: bool
    after_hours: bool
    plan: list[list[dict[str, Any]]]
    step: int
    started_at: datetime

    @classmethod
    def of(cls, call: Call) -> CallState:
        return cls(
            call.to_number,
            call.from_number,
            call.line_id is not None,
            call.after_hours,
            call.plan,
            call.step,
            call.started_at,
        )


def _answer_for(directory: Directory, state: CallState) -> Answer:
    withheld = phones.is_withheld(state.from_number)
    line = directory.lines.get(state.to_number)
    if not state.line_known or line is None:
        return Answer("unknown-line", caller_withheld=withheld)
    hours = directory.hours_for(line.hours)
    if state.after_hours:
        return Answer(
            "closed",
            message=speech.after_hours_message(hours, state.started_at),
            caller_withheld=withheld,
        )
    steps = Plan.steps_from_json(state.plan)
    if state.step >= len(steps):
        return Answer("nobody", message=speech.NOBODY_AVAILABLE, caller_withheld=withheld)
    return Answer(
        "connect",
        legs=steps[state.step],
        announcements=tuple(speech.changes_announcement(hours, state.started_at)),
        caller_withheld=withheld,
    )


# Built once per dialect: constructing an INSERT per call costs more than running it.
_CALLS = cast(Table, Call.__table__)
_INSERT_ONCE = {
    name: dialect_insert(_CALLS)
    .on_conflict_do_nothing(index_elements=["call_sid"])
    .returning(_CALLS.c.id)
    for name, dialect_insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}


def start_call(
    connection: Connection,
    settings: Settings,
    cache: DirectoryCache,
    *,
    call_sid: str,
    from_number: str,
    to_number: str,
    now: datetime,
) -> Answer:
    """Route an incoming call and record it; a retry of the same CallSid answers the same.

    The common path is one read of the directory version and one insert, on a bare
    connection: the directory itself comes from the process's snapshot.
    """
    directory = cache.get(connection, now)
    line = directory.lines.get(to_number)
    values: dict[str, Any] = {
        "call_sid": call_sid,
        "line_id": line.id if line else None,
        "from_number": from_number,
        "to_number": to_number,
        "started_at": now,
        "updated_at": now,
        "status": "ringing",
        "outcome": "in-progress",
        "plan": [],
        "step": 0,
        "after_hours": False,
        "as_substitute": False,
    }
    if line is None:
        values["routing_note"] = "no line configured for this number"
        log.warning("call %s to unconfigured number %s", call_sid, phones.mask(to_number))
    elif not directory.hours_for(line.hours).is_open(now):
        values.update(after_hours=True, outcome="after-hours", routing_note="outside working hours")
    else:
        plan = plan_for_line(directory, line, now)
        values.update(
            intended=plan.intended,
            plan=plan.to_json(),
            routing_note="; ".join(plan.notes) or None,
            notice=notice_label(settings) if plan.steps else None,
        )
    inserted = connection.execute(_INSERT_ONCE[connection.dialect.name], values).first()
    if inserted is None:
        # A retried webhook: answer from the row written the first time.
        with Session(bind=connection) as session:
            existing = find_call(session, call_sid)
            assert existing is not None
            state = CallState.of(existing)
        return _answer_for(directory, state)
    state = CallState(
        to_number, from_number, line is not None, values["after_hours"], values["plan"], 0, now
    )
    return _answer_for(directory, state)


def next_step(
    session: Session,
    settings: Settings,
    call: Call,
    now: datetime,
    cache: DirectoryCache | None = None,
) -> Answer:
    """Move a call whose dial was not answered to its next step, or to the callback offer."""
    steps = Plan.steps_from_json(call.plan)
    if call.step < len(steps):
        call.step += 1
    if call.step < len(steps) and call.notice is None:
        # Never connect anyone before the notice: a row without one is not ours to dial.
        call.step = len(steps)
    if cache is None:
        cache = DirectoryCache(settings)
    return _answer_for(cache.get(session.connection(), now), CallState.of(call))


def find_call(session: Session, call_sid: str) -> Call | None:
    return session.scalar(select(Call).where(Call.call_sid == call_sid))


def substitute_for(call: Call, phone: str) -> str | None:
    """Return the name of the absent person whose call the leg to `phone` is."""
    for step in Plan.steps_from_json(call.plan):
        for leg in step:
            if leg.phone == phone and leg.for_name:
                return leg.for_name
    return None


def mark_callback_requested(call: Call) -> None:
    """The caller asked to be called back: that is how the call ends."""
    if call.outcome in ("in-progress", "no-answer", "busy", "failed", "after-hours", "abandoned"):
        call.outcome = "callback-requested"
