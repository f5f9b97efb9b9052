"""The call report: per staff member and day, and per line and day, over local dates.

Figures come from the same derivation as the call log (`outcomes.derive`), so the report and
`calls list` never disagree. Definitions:

- offered: calls whose dialling rang this person (once per call, whichever step it was);
- answered: calls this person took; as substitute: those taken for someone away;
- missed: offered, not taken by them, and not taken by a colleague ringing at the same time;
- median ring seconds: from the call's start (notice included) to their answer;
- answer rate: answered / offered;
- surveys, survey mean: the post-call ratings (1-5) of the calls they answered, and their mean.

Per line: calls, answered, missed (no-answer, busy, failed), abandoned, after-hours, and the
callback requests made that day with how many are still open and how many of those overdue,
and the post-call ratings given on the line that day with their mean.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.calls import outcomes
from callcenter.calls.models import Call, CallbackRequest, CallEvent
from callcenter.calls.routing import Plan
from callcenter.directory.models import Line, Staff

NO_LINE = "-"


@dataclass
class StaffDay:
    day: date
    staff: str
    name: str
    offered: int = 0
    answered: int = 0
    missed: int = 0
    answered_as_substitute: int = 0
    ring_seconds: list[int] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)

    @property
    def median_ring_seconds(self) -> float | None:
        return statistics.median(self.ring_seconds) if self.ring_seconds else None

    @property
    def answer_rate(self) -> float | None:
        return round(self.answered / self.offered, 3) if self.offered else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["ring_seconds"], data["ratings"]
        data["day"] = self.day.isoformat()
        data["median_ring_seconds"] = self.median_ring_seconds
        data["answer_rate"] = self.answer_rate
        data.update(_survey_figures(self.ratings))
        return data


def _survey_figures(ratings: list[int]) -> dict[str, Any]:
    mean = round(statistics.fmean(ratings), 2) if ratings else None
    return {"surveys": len(ratings), "survey_mean": mean}


@dataclass
class LineDay:
    day: date
    line: str
    calls: int = 0
    answered: int = 0
    missed: int = 0
    abandoned: int = 0
    after_hours: int = 0
    callbacks_requested: int = 0
    callbacks_open: int = 0
    callbacks_overdue: int = 0
    ratings: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["ratings"]
        data["day"] = self.day.isoformat()
        data.update(_survey_figures(self.ratings))
        return data


@dataclass
class Report:
    start: date
    end: date
    timezone: str
    staff: list[StaffDay]
    lines: list[LineDay]

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "timezone": self.timezone,
            "staff": [row.to_json() for row in self.staff],
            "lines": [row.to_json() for row in self.lines],
        }


def local_bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the instants that open `start` and close `end` (inclusive) in local time."""
    opens = datetime.combine(start, time(0), tzinfo=zone)
    closes = datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone)
    return opens, closes


def build(session: Session, *, start: date, end: date, zone: ZoneInfo, now: datetime) -> Report:
    """Count the calls that started between two local dates, both included."""
    opens, closes = local_bounds(start, end, zone)
    call_rows: Sequence[Call] = session.scalars(
        select(Call)
        .where(Call.started_at >= opens, Call.started_at < closes)
        .order_by(Call.started_at, Call.id)
    ).all()
    events: dict[int, list[CallEvent]] = defaultdict(list)
    if call_rows:
        in_range = select(Call.id).where(Call.started_at >= opens, Call.started_at < closes)
        for event in session.scalars(
            select(CallEvent).where(CallEvent.call_id.in_(in_range)).order_by(CallEvent.id)
        ):
            events[event.call_id].append(event)
    line_numbers: dict[int, str] = {i: n for i, n in session.execute(select(Line.id, Line.number))}
    staff_names: dict[str, str] = {k: n for k, n in session.execute(select(Staff.key, Staff.name))}
    answered_keys: dict[int, str] = {i: k for i, k in session.execute(select(Staff.id, Staff.key))}

    staff_days: dict[tuple[date, str], StaffDay] = {}
    line_days: dict[tuple[date, str], LineDay] = {}

    def line_day(day: date, line_id: int | None) -> LineDay:
        number = line_numbers.get(line_id, NO_LINE) if line_id is not None else NO_LINE
        return line_days.setdefault((day, number), LineDay(day, number))

    for call in call_rows:
        day = call.started_at.astimezone(zone).date()
        row = line_day(day, call.line_id)
        row.calls += 1
        if call.outcome == "answered":
            row.answered += 1
        elif call.outcome in outcomes.MISSED:
            row.missed += 1
        elif call.outcome == "abandoned":
            row.abandoned += 1
        elif call.outcome == "after-hours" or call.after_hours:
            row.after_hours += 1
        if call.survey is not None:
            row.ratings.append(call.survey)

        derived = outcomes.derive(call, events.get(call.id, []))
        steps = Plan.steps_from_json(call.plan)
        answerer = answered_keys.get(call.answered_by_id) if call.answered_by_id else None
        for index in sorted(derived.dialled_steps):
            if index >= len(steps):
                continue
            step_answered = derived.answered_step == index
            for leg in steps[index]:
                person = staff_days.setdefault(
                    (day, leg.staff_key),
                    StaffDay(day, leg.staff_key, staff_names.get(leg.staff_key, leg.name)),
                )
                person.offered += 1
                if call.outcome == "answered" and answerer == leg.staff_key:
                    person.answered += 1
                    if call.as_substitute:
                        person.answered_as_substitute += 1
                    if call.ring_seconds is not None:
                        person.ring_seconds.append(call.ring_seconds)
                    if call.survey is not None:
                        person.ratings.append(call.survey)
                elif not step_answered:
                    person.missed += 1

    for request in session.scalars(
        select(CallbackRequest).where(
            CallbackRequest.local_day >= start, CallbackRequest.local_day <= end
        )
    ):
        row = line_day(request.local_day, request.line_id)
        row.callbacks_requested += 1
        if request.status == "open":
            row.callbacks_open += 1
            if request.due_at < now:
                row.callbacks_overdue += 1

    return Report(
        start,
        end,
        zone.key,
        [staff_days[k] for k in sorted(staff_days)],
        [line_days[k] for k in sorted(line_days)],
    )


STAFF_COLUMNS = (
    "day",
    "staff",
    "name",
    "offered",
    "answered",
    "missed",
    "answered_as_substitute",
    "median_ring_seconds",
    "answer_rate",
    "surveys",
    "survey_mean",
)
LINE_COLUMNS = (
    "day",
    "line",
    "calls",
    "answered",
    "missed",
    "abandoned",
    "after_hours",
    "callbacks_requested",
    "callbacks_open",
    "callbacks_overdue",
    "surveys",
    "survey_mean",
)
