"""A per-process snapshot of the directory, reloaded when the directory changes.

Answering a call needs the line, its people and groups, the absences in force and the week's
hours changes. Reading all of that per call is most of a webhook's cost; instead each process
keeps a snapshot and checks one number (`directory_version`, bumped in the same transaction as
any directory change) per call. A change made by the CLI is seen by the very next call.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from callcenter.calendar.hours import Change, LatvianCalendar, WorkingHours, parse_hours
from callcenter.directory.models import (
    Absence,
    GroupMember,
    Line,
    RingGroup,
    Staff,
)
from callcenter.directory.service import hours_changes
from callcenter.settings import Settings

log = logging.getLogger(__name__)

# Absences that ended more than this before loading are left out; calls are never that late.
PAST_MARGIN = timedelta(days=1)
# A snapshot answers calls up to this long after loading, then it is read again regardless,
# so hours changes for a new day are picked up even if nothing else changed.
FRESH_FOR = timedelta(hours=1)
# One-off hours changes are read this far ahead (callers hear of the coming week's changes,
# and the next opening can be a few weeks away over the holidays).
CHANGES_AHEAD = timedelta(days=40)


@dataclass(frozen=True)
class Person:
    id: int
    key: str
    name: str
    phone: str
    active: bool


@dataclass(frozen=True)
class Group:
    id: int
    key: str
    strategy: str
    member_ids: tuple[int, ...]


@dataclass(frozen=True)
class LineInfo:
    id: int
    number: str
    target_staff_id: int | None
    target_group_id: int | None
    overflow_group_id: int | None
    hours: str
    record: bool = True
    survey: bool = False


@dataclass(frozen=True)
class Away:
    staff_id: int
    substitute_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Directory:
    version: int
    loaded_for: datetime
    people: dict[int, Person]
    groups: dict[int, Group]
    lines: dict[str, LineInfo]
    absences: tuple[Away, ...]
    changes: tuple[Change, ...]
    settings: Settings = field(repr=False)
    # Working hours per spec, built on first use: a snapshot's calendar never changes.
    _hours: dict[str, WorkingHours] = field(default_factory=dict, repr=False, compare=False)

    def covers(self, at: datetime) -> bool:
        return self.loaded_for - PAST_MARGIN <= at <= self.loaded_for + FRESH_FOR

    def in_force(self, at: datetime) -> tuple[Away, ...]:
        """Return the absences in force at `at` (start inclusive, end exclusive)."""
        return tuple(a for a in self.absences if a.starts_at <= at < a.ends_at)

    def absent_at(self, at: datetime) -> dict[int, Away]:
        """Return the absence in force at `at` per person."""
        return {a.staff_id: a for a in self.in_force(at)}

    def hours_for(self, spec: str) -> WorkingHours:
        """The working hours of a spec, with the calendar and the changes applied."""
        found = self._hours.get(spec)
        if found is None:
            found = WorkingHours(
                parse_hours(spec),
                LatvianCalendar(self.settings.moved_days_off),
                self.settings.timezone,
                self.changes,
            )
            self._hours[spec] = found
        return found


_VERSION_QUERY = "SELECT version FROM directory_version WHERE id = 1"


def current_version(connection: Connection) -> int:
    version = connection.exec_driver_sql(_VERSION_QUERY).scalar()
    if version is None:
        # The row the migration writes is gone: never trust a snapshot then, read every time.
        log.warning("directory_version row missing; reading the directory on every call")
        return -1
    return int(version)


def load(session: Session, settings: Settings, at: datetime, version: int) -> Directory:
    """Read the directory as it applies around `at`."""
    people = {
        s.id: Person(s.id, s.key, s.name, s.phone, s.active) for s in session.scalars(select(Staff))
    }
    members: dict[int, list[int]] = {}
    for member in session.scalars(select(GroupMember).order_by(GroupMember.position)):
        members.setdefault(member.group_id, []).append(member.staff_id)
    groups = {
        g.id: Group(g.id, g.key, g.strategy, tuple(members.get(g.id, ())))
        for g in session.scalars(select(RingGroup))
    }
    lines = {
        line.number: LineInfo(
            line.id,
            line.number,
            line.target_staff_id,
            line.target_group_id,
            line.overflow_group_id,
            line.hours,
            line.record,
            line.survey,
        )
        for line in session.scalars(select(Line))
    }
    absences = tuple(
        Away(a.staff_id, a.substitute_id, a.starts_at, a.ends_at)
        for a in session.scalars(
            select(Absence).where(
                Absence.cancelled_at.is_(None), Absence.ends_at > at - PAST_MARGIN
            )
        )
    )
    today = at.astimezone(settings.timezone).date()
    changes = tuple(hours_changes(session, today - timedelta(days=1), today + CHANGES_AHEAD))
    return Directory(version, at, people, groups, lines, absences, changes, settings)


class DirectoryCache:
    """The process's snapshot, shared by its threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._current: Directory | None = None
        self.loads = 0

    def peek(self, at: datetime) -> Directory | None:
        """Return the snapshot without checking the version (the caller checks it later).

        None when there is none for `at`, or no version to check it by: then `get` it.
        """
        snapshot = self._current
        if snapshot is not None and snapshot.version >= 0 and snapshot.covers(at):
            return snapshot
        return None

    def get(self, connection: Connection, at: datetime) -> Directory:
        """Return a snapshot valid for `at`, reading the directory again only if it moved."""
        version = current_version(connection)
        snapshot = self._current
        if (
            snapshot is not None
            and version >= 0
            and snapshot.version == version
            and snapshot.covers(at)
        ):
            return snapshot
        with Session(bind=connection) as session:
            fresh = load(session, self.settings, at, version)
        with self._lock:
            self._current = fresh
            self.loads += 1
        return fresh
