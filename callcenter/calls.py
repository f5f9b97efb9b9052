"""A call comes in: decide what the caller hears and who is dialled, and write the call row.

One short transaction, no network calls. A retried webhook (same CallSid) finds the row it
wrote the first time and gets the same answer; it never makes a second row.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from callcenter import directory, phones, speech
from callcenter.hours import DEFAULT_HOURS, LatvianCalendar, WorkingHours, parse_hours
from callcenter.models import Call
from callcenter.routing import Plan, Step, plan_for_line
from callcenter.settings import Settings
from callcenter.snapshot import CHANGES_AHEAD, Directory, DirectoryCache, LineInfo

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


def company_hours(session: Session, settings: Settings, now: datetime) -> WorkingHours:
    """The company's own working days, which callback due dates are counted in."""
    today = now.astimezone(settings.timezone).date()
    changes = directory.hours_changes(session, today - timedelta(days=1), today + CHANGES_AHEAD)
    return WorkingHours(
        parse_hours(DEFAULT_HOURS),
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


_CALLS = cast(Table, Call.__table__)
_HOT_COLUMNS = (
    "call_sid", "line_id", "from_number", "to_number", "started_at", "updated_at", "status",
    "outcome", "plan", "step", "after_hours", "as_substitute", "intended", "routing_note",
    "notice",
)  # fmt: skip


class _CallInsert:
    """The call row's INSERT, prepared once per dialect and run on the DB-API cursor.

    Every call takes this path, and SQLAlchemy's statement machinery costs more than SQLite's
    own work here (the voice benchmark measures it). Values go through the columns' own bind
    processors, so the row is stored exactly as the ORM would store it. The statement also
    returns the directory version, which saves a second statement: the plan is made from the
    snapshot first, and made again in the rare case that the directory moved.
    """

    def __init__(self, dialect: Dialect) -> None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.processors = [
            _CALLS.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in _HOT_COLUMNS
        ]
        # Built from the constant column names above; values are always bound parameters.
        columns = ", ".join(_HOT_COLUMNS)
        self.sql = (
            f"INSERT INTO calls ({columns}) "  # noqa: S608
            f"VALUES ({', '.join(mark for _ in _HOT_COLUMNS)}) "
            "ON CONFLICT (call_sid) DO NOTHING "
            "RETURNING id, (SELECT version FROM directory_version WHERE id = 1)"
        )
        self.undo_sql = f"DELETE FROM calls WHERE id = {mark}"  # noqa: S608

    def run(self, cursor: Any, values: dict[str, Any]) -> tuple[int, int | None] | None:
        """Insert unless the CallSid exists; return (id, directory version), or None."""
        params = tuple(
            process(values.get(name)) if process else values.get(name)
            for name, process in zip(_HOT_COLUMNS, self.processors, strict=True)
        )
        cursor.execute(self.sql, params)
        row = cursor.fetchone()
        return None if row is None else (row[0], row[1])


@functools.cache
def _call_insert(dialect: Dialect) -> _CallInsert:
    return _CallInsert(dialect)


def _decide(
    directory: Directory, settings: Settings, values: dict[str, Any], now: datetime
) -> LineInfo | None:
    """Fill in the call row's routing: after hours, or the plan and the notice."""
    line = directory.lines.get(values["to_number"])
    values.update(
        line_id=line.id if line else None,
        plan=[],
        after_hours=False,
        outcome="in-progress",
        intended=None,
        notice=None,
    )
    if line is None:
        values["routing_note"] = "no line configured for this number"
        # The fallback answer plays the notice before dialling the fallback number.
        values["notice"] = notice_label(settings)
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
    return line


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

    The common path is one statement: insert the row planned from the process's snapshot,
    returning the directory version; if the directory moved meanwhile, plan again.
    """
    values: dict[str, Any] = {
        "call_sid": call_sid,
        "from_number": from_number,
        "to_number": to_number,
        "started_at": now,
        "updated_at": now,
        "status": "ringing",
        "step": 0,
        "as_substitute": False,
    }
    insert = _call_insert(connection.dialect)
    # The DB-API cursor of the caller's connection: same transaction, committed by the caller.
    cursor = connection.connection.cursor()
    try:
        return _record(connection, cursor, insert, settings, cache, values, now)
    finally:
        cursor.close()


def _record(
    connection: Connection,
    cursor: Any,
    insert: _CallInsert,
    settings: Settings,
    cache: DirectoryCache,
    values: dict[str, Any],
    now: datetime,
) -> Answer:
    call_sid, to_number = values["call_sid"], values["to_number"]
    directory = cache.peek(connection, now)
    for _attempt in range(3):
        line, answer = _plan_and_answer(directory, settings, values, now)
        # The answer is ready before the INSERT: from the INSERT on, this transaction holds
        # SQLite's one write lock, and the caller commits as soon as this returns.
        inserted = insert.run(cursor, values)
        if inserted is None:
            # A retried webhook: answer from the row written the first time.
            with Session(bind=connection) as session:
                existing = find_call(session, call_sid)
                assert existing is not None
                return _answer_for(cache.get(connection, now), CallState.of(existing))
        row_id, version = inserted
        if version is not None and version == directory.version:
            break
        # The directory changed since the snapshot was taken: undo, read it, plan again.
        cursor.execute(insert.undo_sql, (row_id,))
        directory = cache.get(connection, now)
        if version is None:
            # No version row to compare with: the snapshot just read is as fresh as it gets.
            line, answer = _plan_and_answer(directory, settings, values, now)
            if insert.run(cursor, values) is None:
                raise RuntimeError(f"call {call_sid} appeared while being recorded")
            break
    if line is None:
        log.warning("call %s to unconfigured number %s", call_sid, phones.mask(to_number))
    return answer


def _plan_and_answer(
    directory: Directory, settings: Settings, values: dict[str, Any], now: datetime
) -> tuple[LineInfo | None, Answer]:
    line = _decide(directory, settings, values, now)
    state = CallState(
        values["to_number"],
        values["from_number"],
        line is not None,
        values["after_hours"],
        values["plan"],
        0,
        now,
    )
    return line, _answer_for(directory, state)


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
    if call.step < len(steps) and call.notice is None:
        # Never connect anyone before the notice: a row without one is not ours to dial.
        call.step = len(steps)
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
