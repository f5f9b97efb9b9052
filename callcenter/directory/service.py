"""The directory: staff, ring groups, lines, absences and one-off hours changes.

Domain functions take a session and never commit. They raise `DirectoryError` with a message
fit to show the person who typed the command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter import phones
from callcenter.calendar.hours import (
    DEFAULT_HOURS,
    Change,
    HoursSpecError,
    parse_hours,
    parse_interval,
)
from callcenter.directory.models import Absence, GroupMember, HoursChange, Line, RingGroup, Staff

_KEY = re.compile(r"^[a-z][a-z0-9_.-]{1,39}$")
STRATEGIES = ("sequential", "simultaneous")
# Twilio rings at most ten <Number>s at once.
MAX_SIMULTANEOUS = 10


class DirectoryError(ValueError):
    """A directory change refused, with the reason to show.

    `code` names the rule (for the console, which says it in the reader's language) and
    `params` what the message mentions; the message itself is the command line's wording.
    """

    def __init__(self, message: str, code: str = "refused", **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


def _check_key(key: str, what: str) -> str:
    if not _KEY.match(key):
        raise DirectoryError(
            f"{what} key {key!r} must be 2-40 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    return key


def _phone(raw: str) -> str:
    try:
        return phones.normalize(raw)
    except phones.InvalidPhone as exc:
        raise DirectoryError(str(exc)) from None


def get_staff(session: Session, key: str) -> Staff:
    staff = session.scalar(select(Staff).where(Staff.key == key))
    if staff is None:
        raise DirectoryError(f"no staff member {key!r}", "unknown-staff", key=key)
    return staff


def get_group(session: Session, key: str) -> RingGroup:
    group = session.scalar(select(RingGroup).where(RingGroup.key == key))
    if group is None:
        raise DirectoryError(f"no group {key!r}")
    return group


def add_staff(
    session: Session,
    key: str,
    *,
    name: str,
    phone: str,
    email: str | None = None,
    position: str | None = None,
) -> Staff:
    """Add a staff member with a normalised E.164 phone number."""
    _check_key(key, "staff")
    if not name.strip():
        raise DirectoryError("--name must not be empty")
    if email is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        raise DirectoryError(f"--email {email!r} is not an e-mail address")
    if session.scalar(select(Staff.id).where(Staff.key == key)) is not None:
        raise DirectoryError(f"staff member {key!r} already exists")
    staff = Staff(
        key=key,
        name=name.strip(),
        phone=_phone(phone),
        email=email,
        position=position,
        active=True,
    )
    session.add(staff)
    session.flush()
    return staff


def set_staff_active(session: Session, key: str, active: bool) -> Staff:
    staff = get_staff(session, key)
    staff.active = active
    return staff


def list_staff(session: Session) -> Sequence[Staff]:
    return session.scalars(select(Staff).order_by(Staff.key)).all()


def add_group(
    session: Session, key: str, *, name: str, members: Sequence[str], strategy: str = "sequential"
) -> RingGroup:
    """Add a ring group; members ring in the order given."""
    _check_key(key, "group")
    if strategy not in STRATEGIES:
        raise DirectoryError(f"--strategy must be one of {', '.join(STRATEGIES)}")
    if not members:
        raise DirectoryError("--members must name at least one staff member")
    if len(set(members)) != len(members):
        raise DirectoryError("--members names someone twice")
    if strategy == "simultaneous" and len(members) > MAX_SIMULTANEOUS:
        raise DirectoryError(f"a simultaneous group rings at most {MAX_SIMULTANEOUS} people")
    if session.scalar(select(RingGroup.id).where(RingGroup.key == key)) is not None:
        raise DirectoryError(f"group {key!r} already exists")
    group = RingGroup(key=key, name=name.strip() or key, strategy=strategy)
    for position, member in enumerate(members):
        group.members.append(GroupMember(staff_id=get_staff(session, member).id, position=position))
    session.add(group)
    session.flush()
    return group


def list_groups(session: Session) -> Sequence[RingGroup]:
    return session.scalars(select(RingGroup).order_by(RingGroup.key)).all()


def _target(session: Session, target: str) -> tuple[Staff | None, RingGroup | None]:
    kind, _, key = target.partition(":")
    if kind == "staff" and key:
        return get_staff(session, key), None
    if kind == "group" and key:
        return None, get_group(session, key)
    raise DirectoryError(f"--target must be staff:KEY or group:KEY, got {target!r}")


def _hours_spec(spec: str) -> str:
    try:
        parse_hours(spec)
    except HoursSpecError as exc:
        raise DirectoryError(f"--hours: {exc}") from None
    return " ".join(spec.split())


def add_line(
    session: Session,
    number: str,
    *,
    target: str,
    hours: str | None = None,
    overflow: str | None = None,
    record: bool = True,
    survey: bool = False,
) -> Line:
    """Route a Twilio number to a staff member or a group, with its hours and switches."""
    e164 = _phone(number)
    spec = _hours_spec(hours if hours is not None else DEFAULT_HOURS)
    staff, group = _target(session, target)
    overflow_group = get_group(session, overflow) if overflow else None
    if session.scalar(select(Line.id).where(Line.number == e164)) is not None:
        raise DirectoryError(f"line {e164} already exists")
    line = Line(
        number=e164,
        target_staff_id=staff.id if staff else None,
        target_group_id=group.id if group else None,
        overflow_group_id=overflow_group.id if overflow_group else None,
        hours=spec,
        record=record,
        survey=survey,
    )
    session.add(line)
    session.flush()
    return line


def get_line(session: Session, number: str) -> Line:
    e164 = _phone(number)
    line = session.scalar(select(Line).where(Line.number == e164))
    if line is None:
        raise DirectoryError(f"no line {e164}")
    return line


def set_line(
    session: Session,
    number: str,
    *,
    target: str | None = None,
    hours: str | None = None,
    record: bool | None = None,
    survey: bool | None = None,
) -> list[str]:
    """Change a line's target, hours or switches; return what changed, as "name: old -> new".

    Like every directory change it moves the directory's version, so the next call follows it.
    """
    line = get_line(session, number)
    changes: list[str] = []
    if target is not None:
        staff, group = _target(session, target)
        before = describe_target(session, line)
        line.target_staff_id = staff.id if staff else None
        line.target_group_id = group.id if group else None
        after = f"staff:{staff.key}" if staff else f"group:{group.key}" if group else "?"
        if after != before:
            changes.append(f"target: {before} -> {after}")
    if hours is not None:
        spec = _hours_spec(hours)
        if spec != line.hours:
            changes.append(f"hours: {line.hours} -> {spec}")
            line.hours = spec
    for name, value in (("record", record), ("survey", survey)):
        if value is not None and value != getattr(line, name):
            changes.append(f"{name}: {_yes(getattr(line, name))} -> {_yes(value)}")
            setattr(line, name, value)
    session.flush()
    return changes


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def list_lines(session: Session) -> Sequence[Line]:
    return session.scalars(select(Line).order_by(Line.number)).all()


def describe_target(session: Session, line: Line) -> str:
    if line.target_staff_id is not None:
        staff = session.get(Staff, line.target_staff_id)
        return f"staff:{staff.key}" if staff else "staff:?"
    group = session.get(RingGroup, line.target_group_id)
    return f"group:{group.key}" if group else "group:?"


# Absences ---------------------------------------------------------------------------------


def add_absence(
    session: Session,
    staff_key: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    substitute_key: str,
    note: str | None = None,
    allow_cycle: bool = False,
) -> Absence:
    """Record an absence with a substitute.

    Refused: end not after start, a person substituting for themselves, an unknown or inactive
    substitute, an absence overlapping another of the same person, and (unless `allow_cycle`)
    one that closes a cycle of substitutes at some time in it: two people away who each cover
    for the other. Calls for them then reach neither: they go to the line's overflow group, or
    the caller hears that nobody can answer and is offered a callback.
    """
    if ends_at <= starts_at:
        raise DirectoryError("--end must be after --start", "end-before-start")
    staff = get_staff(session, staff_key)
    if substitute_key == staff_key:
        raise DirectoryError(
            f"{staff_key} cannot substitute for themselves", "self-substitute", key=staff_key
        )
    substitute = get_staff(session, substitute_key)
    if not substitute.active:
        raise DirectoryError(
            f"substitute {substitute_key!r} is not active",
            "inactive-substitute",
            key=substitute_key,
        )
    overlapping = session.scalar(
        select(Absence.id).where(
            Absence.staff_id == staff.id,
            Absence.cancelled_at.is_(None),
            Absence.starts_at < ends_at,
            Absence.ends_at > starts_at,
        )
    )
    if overlapping is not None:
        raise DirectoryError(
            f"{staff_key} already has absence {overlapping} in that time",
            "overlap",
            key=staff_key,
            absence=overlapping,
        )
    cycle = _closed_cycle(session, staff, substitute, starts_at, ends_at)
    if cycle and not allow_cycle:
        path = " -> ".join(cycle)
        raise DirectoryError(
            f"this closes a cycle of substitutes ({path}): their calls would "
            "reach neither, only the overflow group or a callback offer; "
            "choose another substitute",
            "cycle",
            key=staff_key,
            chain=path,
        )
    absence = Absence(
        staff_id=staff.id,
        substitute_id=substitute.id,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
    )
    session.add(absence)
    session.flush()
    return absence


def closes_cycle(
    session: Session, staff_key: str, *, substitute_key: str, starts_at: datetime, ends_at: datetime
) -> list[str]:
    """Return the cycle of substitutes an absence would close (keys), or [] when none."""
    staff = get_staff(session, staff_key)
    substitute = get_staff(session, substitute_key)
    return _closed_cycle(session, staff, substitute, starts_at, ends_at)


def _closed_cycle(
    session: Session, staff: Staff, substitute: Staff, starts_at: datetime, ends_at: datetime
) -> list[str]:
    """Return the cycle `staff -> substitute -> ... -> staff` the new absence would close.

    Followed through the absences overlapping the new one: a chain that comes back to `staff`
    while they are away is a cycle at some moment of it.
    """
    rows = session.execute(
        select(Absence.staff_id, Absence.substitute_id).where(
            Absence.cancelled_at.is_(None),
            Absence.starts_at < ends_at,
            Absence.ends_at > starts_at,
        )
    ).all()
    covers: dict[int, set[int]] = {}
    for away_id, sub_id in rows:
        covers.setdefault(away_id, set()).add(sub_id)
    keys: dict[int, str] = {i: k for i, k in session.execute(select(Staff.id, Staff.key))}
    path = [staff.id, substitute.id]
    seen = {substitute.id}

    def walk(current: int) -> bool:
        for following in sorted(covers.get(current, ())):
            if following == staff.id:
                path.append(following)
                return True
            if following not in seen:
                seen.add(following)
                path.append(following)
                if walk(following):
                    return True
                path.pop()
        return False

    return [keys[i] for i in path] if walk(substitute.id) else []


def list_absences(
    session: Session, *, current_after: datetime | None = None, include_cancelled: bool = False
) -> Sequence[Absence]:
    query = select(Absence).order_by(Absence.starts_at, Absence.id)
    if not include_cancelled:
        query = query.where(Absence.cancelled_at.is_(None))
    if current_after is not None:
        query = query.where(Absence.ends_at > current_after)
    return session.scalars(query).all()


def cancel_absence(session: Session, absence_id: int, *, now: datetime) -> Absence:
    absence = session.get(Absence, absence_id)
    if absence is None:
        raise DirectoryError(f"no absence {absence_id}", "unknown-absence", absence=absence_id)
    if absence.cancelled_at is not None:
        raise DirectoryError(
            f"absence {absence_id} is already cancelled", "cancelled", absence=absence_id
        )
    absence.cancelled_at = now
    return absence


# One-off hours changes -----------------------------------------------------------------


def set_hours_change(
    session: Session, day: date, *, hours: str | None, message: str | None
) -> HoursChange:
    """Set other hours (or closed, when `hours` is None) for one date, replacing any earlier."""
    if hours is not None:
        try:
            parse_interval(hours)
        except HoursSpecError as exc:
            raise DirectoryError(f"--hours: {exc}") from None
    change = session.scalar(select(HoursChange).where(HoursChange.day == day))
    if change is None:
        change = HoursChange(day=day)
        session.add(change)
    change.hours = hours
    change.message = message.strip() if message else None
    session.flush()
    return change


def remove_hours_change(session: Session, day: date) -> None:
    change = session.scalar(select(HoursChange).where(HoursChange.day == day))
    if change is None:
        raise DirectoryError(f"no hours change on {day.isoformat()}")
    session.delete(change)


def hours_changes(session: Session, start: date, end: date) -> list[Change]:
    """Return the changes for local dates in [start, end]."""
    rows = session.scalars(
        select(HoursChange).where(HoursChange.day >= start, HoursChange.day <= end)
    ).all()
    return [
        Change(row.day, parse_interval(row.hours) if row.hours else None, row.message)
        for row in rows
    ]


def list_hours_changes(session: Session, since: date | None = None) -> Sequence[HoursChange]:
    query = select(HoursChange).order_by(HoursChange.day)
    if since is not None:
        query = query.where(HoursChange.day >= since)
    return session.scalars(query).all()
