"""A call comes in: decide what the caller hears and who is dialled, and write the call row.

One short transaction, no network calls. A retried webhook (same CallSid) finds the row it
wrote the first time and gets the same answer; it never makes a second row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callcenter import directory, phones, speech
from callcenter.hours import DEFAULT_HOURS, LatvianCalendar, WorkingHours, parse_hours
from callcenter.models import Call, Line
from callcenter.routing import Plan, Step, find_line, plan_for_line
from callcenter.settings import Settings

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


def _answer_for(
    session: Session, settings: Settings, call: Call, line: Line | None, now: datetime
) -> Answer:
    withheld = phones.is_withheld(call.from_number)
    if line is None:
        return Answer("unknown-line", caller_withheld=withheld)
    hours = working_hours(session, settings, line.hours, now)
    if call.after_hours:
        return Answer(
            "closed",
            message=speech.after_hours_message(hours, call.started_at),
            caller_withheld=withheld,
        )
    steps = Plan.steps_from_json(call.plan)
    if call.step >= len(steps):
        return Answer("nobody", message=speech.NOBODY_AVAILABLE, caller_withheld=withheld)
    return Answer(
        "connect",
        legs=steps[call.step],
        announcements=tuple(speech.changes_announcement(hours, call.started_at)),
        caller_withheld=withheld,
    )


def start_call(
    session: Session,
    settings: Settings,
    *,
    call_sid: str,
    from_number: str,
    to_number: str,
    now: datetime,
) -> Answer:
    """Route an incoming call and record it; a retry of the same CallSid answers the same."""
    existing = session.scalar(select(Call).where(Call.call_sid == call_sid))
    if existing is not None:
        line = session.get(Line, existing.line_id) if existing.line_id else None
        return _answer_for(session, settings, existing, line, now)

    line = find_line(session, to_number)
    call = Call(
        call_sid=call_sid,
        line_id=line.id if line else None,
        from_number=from_number,
        to_number=to_number,
        started_at=now,
        status="ringing",
        outcome="in-progress",
        plan=[],
        step=0,
    )
    if line is None:
        call.routing_note = "no line configured for this number"
        log.warning("call %s to unconfigured number %s", call_sid, phones.mask(to_number))
    else:
        hours = working_hours(session, settings, line.hours, now)
        if not hours.is_open(now):
            call.after_hours = True
            call.outcome = "after-hours"
            call.routing_note = "outside working hours"
        else:
            plan = plan_for_line(session, line, now)
            call.intended = plan.intended
            call.plan = plan.to_json()
            call.routing_note = "; ".join(plan.notes) or None
            if plan.steps:
                call.notice = notice_label(settings)
    # A concurrent retry of the same webhook may insert first: then answer from its row.
    try:
        with session.begin_nested():
            session.add(call)
    except IntegrityError:
        existing = session.scalar(select(Call).where(Call.call_sid == call_sid))
        assert existing is not None
        call = existing
    return _answer_for(session, settings, call, line, now)


def next_step(session: Session, settings: Settings, call: Call, now: datetime) -> Answer:
    """Move a call whose dial was not answered to its next step, or to the callback offer."""
    steps = Plan.steps_from_json(call.plan)
    if call.step < len(steps):
        call.step += 1
    line = session.get(Line, call.line_id) if call.line_id else None
    if call.step < len(steps) and call.notice is None:
        # Never connect anyone before the notice: a row without one is not ours to dial.
        call.step = len(steps)
    return _answer_for(session, settings, call, line, now)


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
