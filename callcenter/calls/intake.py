"""A call comes in: decide what the caller hears and who is dialled, and write the call row.

One short transaction, no network calls. A retried webhook (same CallSid) finds the row it
wrote the first time and gets the same answer; it never makes a second row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from callcenter import phones
from callcenter.calendar.hours import DEFAULT_HOURS, LatvianCalendar, WorkingHours, parse_hours
from callcenter.calls import speech
from callcenter.calls.models import Call
from callcenter.calls.routing import Plan, Step, intended_for, plan_for_line
from callcenter.calls.states import Outcome
from callcenter.directory import service as directory
from callcenter.directory.snapshot import CHANGES_AHEAD, Directory, DirectoryCache, LineInfo
from callcenter.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["connect", "closed", "nobody", "unknown-line", "survey"]


@dataclass(frozen=True)
class Answer:
    """What to tell Twilio to do with a call."""

    kind: Kind
    legs: Step = ()
    # Spoken after the notice and before the dial: whom the caller is forwarded to while the
    # person they called is away, then changed hours in the coming days.
    announcements: tuple[speech.Message, ...] = ()
    # Spoken before the callback offer: why nobody answers.
    message: tuple[speech.Message, ...] = ()
    caller_withheld: bool = False
    # Whether the line records: the notice and the <Dial record> go together.
    record: bool = True


def company_hours(session: Session, settings: Settings, now: datetime) -> WorkingHours:
    """The company's own working days, which callback due dates are counted in."""
    return hours_of(session, settings, DEFAULT_HOURS, now)


def hours_of(session: Session, settings: Settings, spec: str, now: datetime) -> WorkingHours:
    """The working hours of an hours spec around `now`: calendar and one-off changes applied."""
    today = now.astimezone(settings.timezone).date()
    changes = directory.hours_changes(session, today - timedelta(days=1), today + CHANGES_AHEAD)
    return WorkingHours(
        parse_hours(spec),
        LatvianCalendar(settings.moved_days_off),
        settings.timezone,
        changes,
    )


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
    recorded: bool = True

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
            call.recorded,
        )


def forwarding(
    directory: Directory, line: LineInfo, at: datetime, steps: tuple[Step, ...]
) -> tuple[speech.Away, ...]:
    """Say that the person called is away, until when, and who takes the call.

    For a group, only when every member is away (until the first of them is back); a group
    partly present answers as usual. The substitutes named are those the plan rings for the
    absent (none, "a colleague", when ANNOUNCE_SUBSTITUTE_NAMES is off or a cycle of
    substitutes leaves the call to the overflow group).
    """
    absent = directory.absent_at(at)
    zone = directory.settings.timezone
    legs = [leg for step in steps for leg in step]
    if line.target_staff_id is not None:
        away = absent.get(line.target_staff_id)
        if away is None:
            return ()
        person = directory.people[line.target_staff_id]
        keys = {person.key}
        for_name: str | None = person.name
        until = away.ends_at
    else:
        assert line.target_group_id is not None
        members = directory.groups[line.target_group_id].member_ids
        if not members or any(member not in absent for member in members):
            return ()
        keys = {directory.people[member].key for member in members}
        for_name = None
        until = min(absent[member].ends_at for member in members)
    names: tuple[str, ...] = ()
    if directory.settings.announce_substitute_names:
        names = tuple(dict.fromkeys(leg.name for leg in legs if leg.for_key in keys))
    return (speech.Away(for_name, until.astimezone(zone), names),)


def answer_for(directory: Directory, state: CallState) -> Answer:
    withheld = phones.is_withheld(state.from_number)
    line = directory.lines.get(state.to_number)
    if not state.line_known or line is None:
        return Answer("unknown-line", caller_withheld=withheld)
    hours = directory.hours_for(line.hours)
    if state.after_hours:
        return Answer(
            "closed",
            message=(speech.after_hours(hours, state.started_at),),
            caller_withheld=withheld,
        )
    steps = Plan.steps_from_json(state.plan)
    if state.step >= len(steps):
        return Answer("nobody", message=(speech.NOBODY_AVAILABLE,), caller_withheld=withheld)
    return Answer(
        "connect",
        legs=steps[state.step],
        announcements=(
            *forwarding(directory, line, state.started_at, steps),
            *speech.changes_announcement(hours, state.started_at),
        ),
        caller_withheld=withheld,
        record=state.recorded,
    )


@dataclass(frozen=True)
class Decision:
    """What a call to a number at an instant is answered with, and its row's routing columns."""

    line: LineInfo | None
    columns: dict[str, Any]
    answer: Answer


def decide(
    directory: Directory, settings: Settings, to_number: str, from_number: str, now: datetime
) -> Decision:
    """Decide a call: the plan and notice on an open line, else the hours or the fallback.

    Rules: an open line's decision depends only on the line, whether the caller is withheld,
    the absences in force and the local date (the announced changes are the coming days'):
    `decision_key` names exactly that, so that a caller may keep decisions under it.
    """
    line = directory.lines.get(to_number)
    if line is None:
        columns = row_columns(
            routing_note="no line configured for this number",
            # The fallback answer plays the notice before dialling the fallback number; with
            # no fallback number it only apologises, and no notice is served.
            notice=notice_label(settings) if settings.fallback_number else None,
            recorded=bool(settings.fallback_number),
        )
        return _decision(directory, None, columns, to_number, from_number, now)
    hours = directory.hours_for(line.hours)
    if not hours.is_open(now):
        columns = row_columns(
            line_id=line.id,
            intended=intended_for(directory, line),
            after_hours=True,
            outcome=Outcome.AFTER_HOURS,
            routing_note="outside working hours",
        )
        return _decision(directory, line, columns, to_number, from_number, now)
    plan = plan_for_line(directory, line, now)
    # A line that does not record plays no recording notice (and its dial records nothing).
    recorded = line.record and bool(plan.steps)
    columns = row_columns(
        line_id=line.id,
        intended=plan.intended,
        plan=plan.to_json(),
        routing_note="; ".join(plan.notes) or None,
        notice=notice_label(settings) if recorded else None,
        recorded=recorded,
    )
    return _decision(directory, line, columns, to_number, from_number, now)


def decision_key(directory: Directory, to_number: str, from_number: str, now: datetime) -> Any:
    """Name what an open line's decision depends on; None when it must be decided afresh."""
    line = directory.lines.get(to_number)
    if line is None:
        return None
    hours = directory.hours_for(line.hours)
    if not hours.is_open(now):
        return None
    withheld = phones.is_withheld(from_number)
    return (line.number, withheld, directory.in_force(now), hours.local(now).date())


def row_columns(**columns: Any) -> dict[str, Any]:
    """The routing columns of a call row, defaults first; a decision sets some of them."""
    return {
        "line_id": None,
        "plan": [],
        "after_hours": False,
        "outcome": Outcome.IN_PROGRESS,
        "intended": None,
        "routing_note": None,
        "notice": None,
        "recorded": False,
        **columns,
    }


def _decision(
    directory: Directory,
    line: LineInfo | None,
    columns: dict[str, Any],
    to_number: str,
    from_number: str,
    now: datetime,
) -> Decision:
    # The answer comes from the row's columns exactly as a retried webhook's answer comes from
    # the stored row, so that the two cannot differ.
    state = CallState(
        to_number,
        from_number,
        line is not None,
        columns["after_hours"],
        columns["plan"],
        0,
        now,
        columns["recorded"],
    )
    return Decision(line, columns, answer_for(directory, state))


def next_step(
    session: Session,
    settings: Settings,
    call: Call,
    now: datetime,
    cache: DirectoryCache,
) -> Answer:
    """Move a call whose dial was not answered to its next step, or to the callback offer."""
    steps = Plan.steps_from_json(call.plan)
    if call.step < len(steps):
        call.step += 1
    if call.step < len(steps) and call.notice is None and call.recorded:
        # Never connect anyone to a recorded call before the notice: a row that says it
        # records but not that the notice was served is not ours to dial.
        call.step = len(steps)
    return answer_for(cache.get(session.connection(), now), CallState.of(call))


# Built once: the callbacks look a call up by its SID on every request.
_FIND_CALL = select(Call).where(Call.call_sid == bindparam("call_sid"))


def find_call(session: Session, call_sid: str) -> Call | None:
    return session.scalar(_FIND_CALL, {"call_sid": call_sid})


def substitute_for(call: Call, phone: str) -> str | None:
    """Return the name of the absent person whose call the leg to `phone` is."""
    for step in Plan.steps_from_json(call.plan):
        for leg in step:
            if leg.phone == phone and leg.for_name:
                return leg.for_name
    return None


def mark_callback_requested(call: Call) -> None:
    """The caller asked to be called back: that is how the call ends."""
    if call.outcome in (
        Outcome.IN_PROGRESS,
        Outcome.NO_ANSWER,
        Outcome.BUSY,
        Outcome.FAILED,
        Outcome.AFTER_HOURS,
        Outcome.ABANDONED,
    ):
        call.outcome = Outcome.CALLBACK_REQUESTED
