"""Working hours and the Latvian working calendar.

A line's hours are a spec: `always`, or items like `mon-thu 08:00-17:00, fri 08:00-15:30`.
On top of the weekly hours:
- Latvian public holidays (from the `holidays` package) are closed;
- the working day before a public holiday ends an hour early (Labour Law, section 135);
- with moved days off on (a setting), the substituted day off is closed and the Saturday worked
  in exchange opens with the hours of the weekday it replaces;
- a one-off change for a date (other hours, or closed, with a message) overrides all of that.
A line whose hours are `always` is never closed: it is for lines that must always answer. A
one-off change does not apply to it either (it neither closes nor shortens it), so its callers
hear no announcement of one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The company's published hours, used when a line is added without --hours.
DEFAULT_HOURS = "mon-thu 08:00-17:00, fri 08:00-15:30"
# Labour Law, section 135: the working day before a public holiday is one hour shorter.
PRE_HOLIDAY_SHORTENING = timedelta(hours=1)

_ITEM = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?)\s+(?P<open>\d{1,2}:\d{2})-(?P<close>\d{1,2}:\d{2})$"
)
_INTERVAL = re.compile(r"^(?P<open>\d{1,2}:\d{2})-(?P<close>\d{1,2}:\d{2})$")


class HoursSpecError(ValueError):
    """An hours spec that cannot be read."""


def _clock(value: str, spec: str) -> time:
    hour, minute = (int(part) for part in value.split(":"))
    if hour == 24 and minute == 0:
        return time.max
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise HoursSpecError(f"{value!r} is not a time of day in {spec!r}")
    return time(hour, minute)


def parse_interval(text: str) -> tuple[time, time]:
    """Parse `HH:MM-HH:MM`, opening before closing."""
    match = _INTERVAL.match(text.strip())
    if not match:
        raise HoursSpecError(f"{text!r} is not like 09:00-13:00")
    opens, closes = _clock(match["open"], text), _clock(match["close"], text)
    if closes <= opens:
        raise HoursSpecError(f"{text!r} closes before it opens")
    return opens, closes


@dataclass(frozen=True)
class WeeklyHours:
    """Opening intervals by weekday (0 = Monday); `always` means never closed."""

    always: bool = False
    days: Mapping[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)

    def intervals(self, weekday: int) -> tuple[tuple[time, time], ...]:
        return self.days.get(weekday, ())


@cache
def parse_hours(spec: str) -> WeeklyHours:
    """Parse an hours spec; raise HoursSpecError naming what is wrong."""
    text = " ".join(spec.lower().split())
    if text == "always":
        return WeeklyHours(always=True)
    if not text:
        raise HoursSpecError("empty hours spec")
    days: dict[int, list[tuple[time, time]]] = {}
    for item in text.split(","):
        item = item.strip()
        match = _ITEM.match(item)
        if not match:
            raise HoursSpecError(
                f"{item!r} is not like 'mon-thu 08:00-17:00' (or the whole spec 'always')"
            )
        first, _, last = match["days"].partition("-")
        for name in (first, last or first):
            if name not in DAY_NAMES:
                raise HoursSpecError(f"{name!r} is not a day (mon tue wed thu fri sat sun)")
        start, end = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if end < start:
            raise HoursSpecError(f"{match['days']!r} runs backwards")
        interval = parse_interval(f"{match['open']}-{match['close']}")
        for weekday in range(start, end + 1):
            for existing in days.get(weekday, []):
                if interval[0] < existing[1] and existing[0] < interval[1]:
                    raise HoursSpecError(f"{item!r} overlaps other hours on {DAY_NAMES[weekday]}")
            days.setdefault(weekday, []).append(interval)
    return WeeklyHours(days={k: tuple(sorted(v)) for k, v in days.items()})


@dataclass(frozen=True)
class DayPlan:
    """What one local date looks like for a line."""

    day: date
    intervals: tuple[tuple[time, time], ...]
    reason: str  # "regular", "holiday", "day-off", "worked-saturday", "pre-holiday", "change"
    holiday_name: str | None = None
    message: str | None = None

    @property
    def closed(self) -> bool:
        return not self.intervals


@dataclass(frozen=True)
class Change:
    """A one-off change for a date: other hours (None = closed) and what callers hear."""

    day: date
    interval: tuple[time, time] | None
    message: str | None


@cache
def _lv_year(year: int) -> holidays.HolidayBase:
    # Latvian names (what callers hear) and the matching date format in substitution labels.
    return holidays.country_holidays("LV", years=year, language="lv")


@cache
def _substitutions(year: int) -> dict[date, date]:
    """Map each worked Saturday near `year` to the day off it pays for."""
    result: dict[date, date] = {}
    for y in (year - 1, year, year + 1):
        calendar = _lv_year(y)
        for worked in calendar.weekend_workdays:
            label = worked.strftime(calendar.substituted_date_format)
            for day, name in calendar.items():
                if label in name:
                    result[worked] = day
    return result


@cache
def _days_off(year: int) -> frozenset[date]:
    return frozenset(_substitutions(year).values())


class LatvianCalendar:
    """Public holidays, substituted days off and worked Saturdays in Latvia."""

    def __init__(self, moved_days_off: bool = True) -> None:
        self.moved_days_off = moved_days_off

    def holiday_name(self, day: date) -> str | None:
        """Return the public holiday on `day` (not counting substituted days off)."""
        name = _lv_year(day.year).get(day)
        if name is None or day in _days_off(day.year):
            return None
        return str(name)

    def is_day_off(self, day: date) -> bool:
        """Tell whether `day` is a substituted day off (only with moved days off on)."""
        return self.moved_days_off and day in _days_off(day.year)

    def worked_saturday_for(self, day: date) -> date | None:
        """Return the day off that a worked Saturday pays for, when moved days off apply."""
        if not self.moved_days_off:
            return None
        return _substitutions(day.year).get(day)


class WorkingHours:
    """A line's hours on the Latvian calendar with one-off changes applied."""

    def __init__(
        self,
        weekly: WeeklyHours,
        calendar: LatvianCalendar,
        timezone: ZoneInfo,
        changes: Iterable[Change] = (),
    ) -> None:
        self.weekly = weekly
        self.calendar = calendar
        self.timezone = timezone
        self.changes = {change.day: change for change in changes}

    def day(self, day: date) -> DayPlan:
        """Return the opening intervals of one local date, and why."""
        change = self.changes.get(day)
        if change is not None:
            changed = (change.interval,) if change.interval else ()
            return DayPlan(day, changed, "change", message=change.message)
        holiday = self.calendar.holiday_name(day)
        if holiday is not None:
            return DayPlan(day, (), "holiday", holiday_name=holiday)
        if self.calendar.is_day_off(day):
            return DayPlan(day, (), "day-off")
        reason = "regular"
        weekday = day.weekday()
        replaced = self.calendar.worked_saturday_for(day)
        if replaced is not None:
            weekday, reason = replaced.weekday(), "worked-saturday"
        intervals: tuple[tuple[time, time], ...] = self.weekly.intervals(weekday)
        tomorrow = self.calendar.holiday_name(day + timedelta(days=1))
        if intervals and tomorrow is not None:
            head, (opens, closes) = intervals[:-1], intervals[-1]
            shorter = (datetime.combine(day, closes) - PRE_HOLIDAY_SHORTENING).time()
            intervals = (*head, (opens, shorter)) if shorter > opens else head
            reason = "pre-holiday"
        return DayPlan(day, intervals, reason)

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.timezone)

    def is_open(self, at: datetime) -> bool:
        """Tell whether the line answers at `at` (opening inclusive, closing exclusive)."""
        if self.weekly.always:
            return True
        local = self.local(at)
        clock = local.time().replace(tzinfo=None)
        return any(opens <= clock < closes for opens, closes in self.day(local.date()).intervals)

    def open_until(self, at: datetime) -> datetime | None:
        """Return when the line closes, if it is open at `at` (None: closed, or `always`)."""
        if self.weekly.always:
            return None
        local = self.local(at)
        clock = local.time().replace(tzinfo=None)
        for opens, closes in self.day(local.date()).intervals:
            if opens <= clock < closes:
                if closes == time.max:
                    midnight = datetime.combine(local.date() + timedelta(days=1), time(0))
                    return midnight.replace(tzinfo=self.timezone).astimezone(UTC)
                closing = datetime.combine(local.date(), closes, tzinfo=self.timezone)
                return closing.astimezone(UTC)
        return None

    def next_opening(self, at: datetime, horizon_days: int = 21) -> tuple[datetime, DayPlan] | None:
        """Return the next moment the line opens after `at`, with that day's plan."""
        local = self.local(at)
        for offset in range(horizon_days):
            day = local.date() + timedelta(days=offset)
            plan = self.day(day)
            for opens, _closes in plan.intervals:
                moment = datetime.combine(day, opens, tzinfo=self.timezone)
                if moment > local:
                    return moment.astimezone(UTC), plan
        return None

    def upcoming_changes(self, at: datetime, days: int = 7) -> list[Change]:
        """Return the changes from today for `days` days, so callers hear of them.

        Every change is announced: with its message when it has one, else with the hours.
        """
        today = self.local(at).date()
        return [
            change
            for day, change in sorted(self.changes.items())
            if today <= day < today + timedelta(days=days)
        ]

    def add_working_days(self, at: datetime, count: int) -> datetime:
        """Return the close of the `count`-th working day after `at`'s local date.

        With `count` 0: the close of today if it is a working day not yet closed, else the
        close of the next working day.
        """
        day = self.local(at).date()
        if count <= 0:
            plan = self.day(day)
            if plan.intervals:
                closes = datetime.combine(day, plan.intervals[-1][1], tzinfo=self.timezone)
                if closes > at:
                    return closes.astimezone(UTC)
            count = 1
        found = 0
        for _ in range(366):
            day += timedelta(days=1)
            plan = self.day(day)
            if plan.intervals:
                found += 1
                if found == count:
                    closes = datetime.combine(day, plan.intervals[-1][1], tzinfo=self.timezone)
                    return closes.astimezone(UTC)
        raise RuntimeError("no working day within a year")
