"""A call comes in: decide what the caller hears and who is dialled, and write the call row.

One short transaction, no network calls. A retried webhook (same CallSid) finds the row it
wrote the first time and gets the same answer; it never makes a second row.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Engine, Table, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from callcenter import phones
from callcenter.calendar.hours import DEFAULT_HOURS, LatvianCalendar, WorkingHours, parse_hours
from callcenter.calls import speech
from callcenter.calls.models import Call
from callcenter.calls.routing import Plan, Step, intended_for, plan_for_line
from callcenter.directory import service as directory
from callcenter.directory.snapshot import CHANGES_AHEAD, Directory, DirectoryCache, LineInfo
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


@dataclass(frozen=True)
class Decision:
    """What a call to a number at an instant is answered with, and its row's routing columns."""

    line: LineInfo | None
    columns: dict[str, Any]
    answer: Answer
    # The columns as bound parameters, per dialect: a memoized decision is processed once.
    _params: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False, compare=False)
    # What the answer renders to, kept by the renderer (the webhook) on the same terms.
    rendered: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)


# A snapshot keeps at most this many decisions (lines x absences in force x dates: a handful).
DECISIONS_KEPT = 1024


def decide(
    directory: Directory, settings: Settings, to_number: str, from_number: str, now: datetime
) -> Decision:
    """Decide a call: the plan and notice on an open line, else the hours or the fallback.

    An open line's decision changes only with the absences in force and the local date (the
    announced changes are the coming days'), so it is kept in the snapshot under those.
    """
    line = directory.lines.get(to_number)
    if line is None:
        columns = _columns(
            routing_note="no line configured for this number",
            # The fallback answer plays the notice before dialling the fallback number; with
            # no fallback number it only apologises, and no notice is served.
            notice=notice_label(settings) if settings.fallback_number else None,
        )
        return _decision(directory, None, columns, to_number, from_number, now)
    hours = directory.hours_for(line.hours)
    if not hours.is_open(now):
        columns = _columns(
            line_id=line.id,
            intended=intended_for(directory, line),
            after_hours=True,
            outcome="after-hours",
            routing_note="outside working hours",
        )
        return _decision(directory, line, columns, to_number, from_number, now)
    withheld = phones.is_withheld(from_number)
    key = (line.number, withheld, directory.in_force(now), hours.local(now).date())
    found = directory.decisions.get(key)
    if found is None:
        plan = plan_for_line(directory, line, now)
        columns = _columns(
            line_id=line.id,
            intended=plan.intended,
            plan=plan.to_json(),
            routing_note="; ".join(plan.notes) or None,
            notice=notice_label(settings) if plan.steps else None,
        )
        found = _decision(directory, line, columns, to_number, from_number, now)
        if len(directory.decisions) >= DECISIONS_KEPT:
            directory.decisions.clear()
        directory.decisions[key] = found
    return found


def _columns(**columns: Any) -> dict[str, Any]:
    return {
        "line_id": None,
        "plan": [],
        "after_hours": False,
        "outcome": "in-progress",
        "intended": None,
        "routing_note": None,
        "notice": None,
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
        to_number, from_number, line is not None, columns["after_hours"], columns["plan"], 0, now
    )
    return Decision(line, columns, _answer_for(directory, state))


_CALLS = cast(Table, Call.__table__)
# The call row as the voice webhook writes it: what the call is, then how it was decided.
_CALL_COLUMNS = ("call_sid", "from_number", "to_number", "started_at", "updated_at")
_FIXED = {"status": "ringing", "step": 0, "as_substitute": False}
_DECISION_COLUMNS = (*_FIXED, *_columns())


class _CallInsert:
    """The call row's INSERT, prepared once per dialect and run on the DB-API cursor.

    Every call takes this path, and SQLAlchemy's statement machinery costs more than the
    database's own work here (the voice benchmark measures it). Values go through the columns'
    own bind processors, so the row is stored exactly as the ORM would store it; a memoized
    decision's columns are processed once. The statement also returns the directory version,
    which saves a second statement: the plan is made from the snapshot first, and made again
    in the rare case that the directory moved.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect.name
        mark = "?" if dialect.paramstyle == "qmark" else "%s"

        def processor(name: str) -> Callable[[Any], Any]:
            found = _CALLS.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            return found or (lambda value: value)

        self.process_time = processor("started_at")
        self.decision_processors = [processor(name) for name in _DECISION_COLUMNS]
        columns = ", ".join((*_CALL_COLUMNS, *_DECISION_COLUMNS))
        count = len(_CALL_COLUMNS) + len(_DECISION_COLUMNS)
        # Built from the constant column names above; values are always bound parameters.
        self.sql = (
            f"INSERT INTO calls ({columns}) "  # noqa: S608
            f"VALUES ({', '.join(mark for _ in range(count))}) "
            "ON CONFLICT (call_sid) DO NOTHING "
            "RETURNING id, (SELECT version FROM directory_version WHERE id = 1)"
        )
        self.undo_sql = f"DELETE FROM calls WHERE id = {mark}"  # noqa: S608

    def _decision_params(self, decision: Decision) -> tuple[Any, ...]:
        params = decision._params.get(self.dialect)
        if params is None:
            values = {**_FIXED, **decision.columns}
            params = tuple(
                process(values[name])
                for name, process in zip(_DECISION_COLUMNS, self.decision_processors, strict=True)
            )
            decision._params[self.dialect] = params
        return params

    def run(
        self,
        cursor: Any,
        call_sid: str,
        from_number: str,
        to_number: str,
        now: datetime,
        decision: Decision,
    ) -> tuple[int, int | None] | None:
        """Insert unless the CallSid exists; return (id, directory version), or None."""
        at = self.process_time(now)  # started_at and updated_at: the same instant
        cursor.execute(
            self.sql, (call_sid, from_number, to_number, at, at, *self._decision_params(decision))
        )
        row = cursor.fetchone()
        return None if row is None else (row[0], row[1])


@functools.cache
def _call_insert(dialect: Dialect) -> _CallInsert:
    return _CallInsert(dialect)


# Times the directory may move under one call before the latest plan is kept regardless.
_ATTEMPTS = 3


def start_call(
    cursor: Any,
    engine: Engine,
    settings: Settings,
    cache: DirectoryCache,
    *,
    call_sid: str,
    from_number: str,
    to_number: str,
    now: datetime,
) -> Decision:
    """Route an incoming call and record it; a retry of the same CallSid answers the same.

    `cursor` is a DB-API cursor in the caller's transaction, which the caller commits. The
    common path is one statement on it: insert the row decided from the process's snapshot,
    returning the directory version; if the directory moved meanwhile, decide again. The
    rare reads (a stale snapshot, a retried webhook) use a connection of their own.
    """
    insert = _call_insert(engine.dialect)
    directory = cache.peek(now) or _reload(engine, cache, now)
    for attempt in range(_ATTEMPTS):
        # The answer is ready before the INSERT: from the INSERT on, this transaction holds
        # SQLite's one write lock, and the caller commits as soon as this returns.
        decision = decide(directory, settings, to_number, from_number, now)
        inserted = insert.run(cursor, call_sid, from_number, to_number, now, decision)
        if inserted is None:
            # A retried webhook: answer from the row written the first time.
            with Session(engine) as session:
                existing = find_call(session, call_sid)
                assert existing is not None
                answer = _answer_for(cache.get(session.connection(), now), CallState.of(existing))
                # Only the answer is used (and rendered) for a retry: nothing more is written.
                return Decision(None, {}, answer)
        row_id, version = inserted
        # No version row at all: the snapshot was read for this very call (see peek).
        current = version == directory.version or (version is None and directory.version < 0)
        if current or attempt == _ATTEMPTS - 1:
            break
        # The directory changed since the snapshot was taken: undo, read it, decide again.
        cursor.execute(insert.undo_sql, (row_id,))
        directory = _reload(engine, cache, now)
    if decision.line is None:
        log.warning("call %s to unconfigured number %s", call_sid, phones.mask(to_number))
    return decision


def _reload(engine: Engine, cache: DirectoryCache, now: datetime) -> Directory:
    with engine.connect() as connection:
        return cache.get(connection, now)


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
