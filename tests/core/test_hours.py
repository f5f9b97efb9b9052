"""The working calendar: hours specs, Latvian holidays, short days, moved days off."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from callcenter.calendar.hours import (
    DEFAULT_HOURS,
    Change,
    HoursSpecError,
    LatvianCalendar,
    WorkingHours,
    parse_hours,
)
from tests.conftest import RIGA


def hours(moved: bool = True, spec: str = DEFAULT_HOURS, changes: tuple = ()) -> WorkingHours:  # type: ignore[type-arg]
    return WorkingHours(parse_hours(spec), LatvianCalendar(moved), RIGA, changes)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=RIGA)  # type: ignore[misc]


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "mon 8-17",
        "mon-thu 08:00-17:00,",
        "xyz 08:00-17:00",
        "fri-mon 08:00-17:00",
        "mon 17:00-08:00",
        "mon 25:00-26:00",
        "mon 08:00-12:00, mon 11:00-13:00",
    ],
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(HoursSpecError):
        parse_hours(spec)


def test_spec_with_a_lunch_break() -> None:
    weekly = parse_hours("mon-fri 08:00-12:00, mon-fri 13:00-17:00")
    assert weekly.intervals(0) == ((time(8), time(12)), (time(13), time(17)))
    line = hours(spec="mon-fri 08:00-12:00, mon-fri 13:00-17:00")
    assert line.is_open(local(2026, 11, 23, 11, 59, 59))
    assert not line.is_open(local(2026, 11, 23, 12, 30))


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (local(2026, 11, 23, 7, 59, 59), False),
        (local(2026, 11, 23, 8, 0, 0), True),
        (local(2026, 11, 23, 16, 59, 59), True),
        (local(2026, 11, 23, 17, 0, 0), False),
        (local(2026, 11, 27, 15, 29, 59), True),  # Friday closes at 15:30
        (local(2026, 11, 27, 15, 30, 0), False),
        (local(2026, 11, 28, 10, 0, 0), False),  # Saturday
    ],
)
def test_regular_week_boundaries(moment: datetime, is_open: bool) -> None:
    assert hours().is_open(moment) is is_open


def test_christmas_eve_closed_and_the_day_before_one_hour_shorter() -> None:
    line = hours()
    assert line.day(date(2026, 12, 23)).intervals == ((time(8), time(16)),)
    assert line.day(date(2026, 12, 23)).reason == "pre-holiday"
    assert line.day(date(2026, 12, 24)).closed
    assert line.day(date(2026, 12, 24)).holiday_name == "Ziemassvētku vakars"


def test_proclamation_day_closed_and_17_november_shorter() -> None:
    line = hours()
    assert line.day(date(2026, 11, 17)).intervals == ((time(8), time(16)),)
    assert line.day(date(2026, 11, 18)).closed
    assert line.day(date(2026, 11, 19)).intervals == ((time(8), time(17)),)


def test_worked_saturday_17_january_2026_with_moved_days_off() -> None:
    line = hours(moved=True)
    saturday = line.day(date(2026, 1, 17))
    # It is worked in exchange for Friday 2 January, so it keeps Friday's hours.
    assert saturday.reason == "worked-saturday"
    assert saturday.intervals == ((time(8), time(15, 30)),)
    assert line.day(date(2026, 1, 2)).closed
    assert line.is_open(local(2026, 1, 17, 9, 0))


def test_without_moved_days_off_the_saturday_is_closed_and_the_friday_open() -> None:
    line = hours(moved=False)
    assert line.day(date(2026, 1, 17)).closed
    assert line.day(date(2026, 1, 2)).intervals == ((time(8), time(15, 30)),)


def test_day_off_22_june_2026() -> None:
    assert hours(moved=True).day(date(2026, 6, 22)).closed
    assert hours(moved=True).day(date(2026, 6, 22)).reason == "day-off"
    # Without the moved day off, 22 June is the day before Līgo: one hour shorter.
    assert hours(moved=False).day(date(2026, 6, 22)).intervals == ((time(8), time(16)),)
    assert hours(moved=True).day(date(2026, 6, 27)).reason == "worked-saturday"


def test_one_off_change_overrides_the_calendar() -> None:
    change = Change(date(2026, 11, 25), (time(10), time(12)), "saīsināti")
    closed = Change(date(2026, 11, 26), None, "slēgts")
    line = hours(changes=(change, closed))
    assert line.is_open(local(2026, 11, 25, 11, 0))
    assert not line.is_open(local(2026, 11, 25, 9, 0))
    assert not line.is_open(local(2026, 11, 26, 10, 0))
    assert [c.day for c in line.upcoming_changes(local(2026, 11, 23, 10))] == [
        date(2026, 11, 25),
        date(2026, 11, 26),
    ]


def test_always_is_never_closed_even_on_holidays() -> None:
    line = hours(spec="always")
    assert line.is_open(local(2026, 12, 24, 3, 0))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # DST starts on the last Sunday of March: Monday opens at 08:00 EEST (05:00 UTC).
        (local(2026, 3, 28, 12, 0), datetime(2026, 3, 30, 5, 0, tzinfo=UTC)),
        # DST ends on the last Sunday of October: Monday opens at 08:00 EET (06:00 UTC).
        (local(2026, 10, 24, 12, 0), datetime(2026, 10, 26, 6, 0, tzinfo=UTC)),
        (local(2026, 12, 23, 16, 0), datetime(2026, 12, 28, 6, 0, tzinfo=UTC)),
    ],
)
def test_next_opening_across_dst_and_holidays(moment: datetime, expected: datetime) -> None:
    following = hours().next_opening(moment)
    assert following is not None and following[0] == expected


@pytest.mark.parametrize(
    ("moment", "due"),
    [
        (local(2026, 11, 23, 10), local(2026, 11, 25, 17)),
        # Over the holiday: Tuesday 17 Nov -> Thursday 19, Friday 20 (18 is closed).
        (local(2026, 11, 17, 10), local(2026, 11, 20, 15, 30)),
        # Christmas: Wednesday 23 Dec -> Monday 28, Tuesday 29.
        (local(2026, 12, 23, 15), local(2026, 12, 29, 17)),
        # Saturday evening counts from the next working day.
        (local(2026, 11, 28, 20), local(2026, 12, 1, 17)),
    ],
)
def test_two_working_days(moment: datetime, due: datetime) -> None:
    assert hours().add_working_days(moment, 2) == due.astimezone(UTC)


def test_dst_change_days_have_normal_hours() -> None:
    line = hours()
    # Sunday DST days are closed; the Mondays after open at local 08:00 all the same.
    assert line.is_open(local(2026, 3, 30, 8, 0))
    assert not line.is_open(local(2026, 3, 30, 8, 0) - timedelta(seconds=1))
