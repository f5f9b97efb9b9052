"""The due time: RecordingStartTime plus RETENTION_MONTHS calendar months, Riga wall time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.recordings.policy import due_at
from callcenter.settings import Settings

RIGA = ZoneInfo("Europe/Riga")
SETTINGS = Settings()


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=RIGA)


@pytest.mark.parametrize(
    ("started", "due"),
    [
        # Leap years: a day past the end of February becomes its last day.
        (local(2027, 11, 29, 10, 0), local(2028, 2, 29, 10, 0)),
        (local(2027, 11, 30, 10, 0), local(2028, 2, 29, 10, 0)),
        (local(2028, 11, 30, 10, 0), local(2029, 2, 28, 10, 0)),
        (local(2028, 11, 28, 10, 0), local(2029, 2, 28, 10, 0)),
        # Month ends.
        (local(2026, 5, 31, 9, 15), local(2026, 8, 31, 9, 15)),
        (local(2026, 3, 31, 9, 15), local(2026, 6, 30, 9, 15)),
        (local(2026, 12, 31, 23, 59, 59), local(2027, 3, 31, 23, 59, 59)),
        (local(2026, 1, 31, 0, 0), local(2026, 4, 30, 0, 0)),
        # Across New Year.
        (local(2026, 10, 15, 12, 0), local(2027, 1, 15, 12, 0)),
    ],
)
def test_due_is_three_calendar_months_later_in_local_time(started: datetime, due: datetime) -> None:
    assert due_at(started.astimezone(UTC), SETTINGS) == due.astimezone(UTC)


def test_due_keeps_the_wall_clock_across_a_dst_change() -> None:
    # Winter (EET, +02:00) to summer (EEST, +03:00): the same wall time is an hour earlier in UTC.
    started = local(2026, 1, 10, 14, 0)
    assert started.utcoffset() == timedelta(hours=2)
    assert due_at(started, SETTINGS) == datetime(2026, 4, 10, 11, 0, tzinfo=UTC)
    # Summer to winter: an hour later in UTC.
    started = local(2026, 8, 10, 14, 0)
    assert due_at(started, SETTINGS) == datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def test_due_in_the_spring_gap_takes_the_later_instant() -> None:
    # 29 March 2026 (last Sunday of March): Riga's clocks jump from 03:00 to 04:00, so 03:30 does
    # not exist. Read as +02:00 it is 01:30 UTC (04:30 summer time); read as +03:00 it would be
    # 00:30 UTC. Nothing is deleted before it is due: the later one.
    started = local(2025, 12, 29, 3, 30)
    due = due_at(started, SETTINGS)
    assert due == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert due.astimezone(RIGA).isoformat() == "2026-03-29T04:30:00+03:00"


def test_due_in_the_autumn_fold_takes_the_later_instant() -> None:
    # 25 October 2026 (last Sunday of October): 04:00 summer time becomes 03:00 winter time, so
    # 03:30 happens twice: 00:30 UTC and 01:30 UTC. The later one.
    started = local(2026, 7, 25, 3, 30)
    due = due_at(started, SETTINGS)
    assert due == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert due.astimezone(RIGA).isoformat() == "2026-10-25T03:30:00+02:00"


def test_a_recording_made_during_the_fold_counts_from_its_own_instant() -> None:
    # Both 03:30s of 25 October 2026 land on 25 January 2027 03:30 winter time.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert due_at(first, SETTINGS) == due_at(second, SETTINGS)
    assert due_at(first, SETTINGS) == datetime(2027, 1, 25, 1, 30, tzinfo=UTC)


def test_due_follows_retention_months_and_the_time_zone() -> None:
    settings = Settings(retention_months=1, timezone=ZoneInfo("America/New_York"))
    started = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)  # 07:00 in New York
    assert due_at(started, settings) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)


def test_due_keeps_seconds_and_microseconds() -> None:
    started = datetime(2026, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
    assert due_at(started, SETTINGS) == datetime(2026, 5, 3, 3, 5, 6, 789, tzinfo=UTC)


def test_due_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        due_at(datetime(2026, 1, 1, 12, 0), SETTINGS)
