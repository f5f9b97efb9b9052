"""A small sample directory for development: the README's first command loads it."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.accounts import service as accounts
from callcenter.accounts.models import ROLES, User
from callcenter.directory import service as directory
from callcenter.directory.models import Line, Staff

# Numbers in Latvia's ranges that belong to nobody here: the sample never rings a real person.
SAMPLE_LINE_DEPARTMENT = "+37167000001"
SAMPLE_LINE_DIRECT = "+37167000002"
# An information line that does not record: no recording notice, no recording.
SAMPLE_LINE_UNRECORDED = "+37167000003"
SAMPLE_CALLER = "+37129999999"
SAMPLE_STAFF = ("jberzins", "lozola", "akalnins")
SAMPLE_LINES = (SAMPLE_LINE_DEPARTMENT, SAMPLE_LINE_DIRECT)


def holds_other_data(session: Session) -> bool:
    """Tell whether the directory holds anyone or any line the sample did not put there."""
    other_staff = session.scalar(
        select(func.count()).select_from(Staff).where(Staff.key.not_in(SAMPLE_STAFF))
    )
    other_lines = session.scalar(
        select(func.count()).select_from(Line).where(Line.number.not_in(SAMPLE_LINES))
    )
    return bool(other_staff or other_lines)


def load(session: Session, now: datetime, zone: ZoneInfo | None = None) -> bool:
    """Load the sample directory into an empty database; return False if it is not empty."""
    zone = zone or ZoneInfo("Europe/Riga")
    # Away for two weeks, back at 08:00 local time: what callers hear names that moment.
    back = datetime.combine((now.astimezone(zone) + timedelta(days=14)).date(), time(8), zone)
    if session.scalar(select(func.count()).select_from(Staff)):
        return False
    directory.add_staff(
        session,
        "jberzins",
        name="Jānis Bērziņš",
        phone="+37120000001",
        position="abonentu daļas vadītājs",
    )
    directory.add_staff(
        session, "lozola", name="Līga Ozola", phone="+37120000002", position="klientu konsultante"
    )
    directory.add_staff(
        session,
        "akalnins",
        name="Andris Kalniņš",
        phone="+37120000003",
        position="klientu konsultants",
    )
    directory.add_group(
        session,
        "abonenti",
        name="Abonentu daļa",
        members=["lozola", "akalnins"],
        strategy="sequential",
    )
    directory.add_line(session, SAMPLE_LINE_DEPARTMENT, target="group:abonenti")
    # The direct line always answers, so the sample shows a substitute at any hour; its
    # callers are asked to rate the conversation.
    directory.add_line(
        session,
        SAMPLE_LINE_DIRECT,
        target="staff:jberzins",
        hours="always",
        overflow="abonenti",
        survey=True,
    )
    directory.add_line(
        session, SAMPLE_LINE_UNRECORDED, target="staff:akalnins", hours="always", record=False
    )
    directory.add_absence(
        session,
        "jberzins",
        starts_at=now - timedelta(hours=1),
        ends_at=back,
        substitute_key="lozola",
        note="atvaļinājums",
    )
    return True


# Development only (`callcenter serve`): one console user per role, with this password.
DEVELOPMENT_PASSWORD = "development-only-password"  # noqa: S105 - loopback only, by design
# The sample's staff user is Līga, who covers for Jānis while he is away.
DEVELOPMENT_STAFF_KEY = "lozola"


def load_users(session: Session, now: datetime) -> list[str]:
    """Add a console user per role, named after it, into a database with no users yet.

    The staff user is the sample's Līga; without her in the directory no staff user is added.
    Returns the usernames added.
    """
    if session.scalar(select(func.count()).select_from(User)):
        return []
    has_staff = session.scalar(select(Staff.id).where(Staff.key == DEVELOPMENT_STAFF_KEY))
    added = []
    for role in ROLES:
        if role == "staff" and has_staff is None:
            continue
        accounts.add_user(
            session,
            role,
            role=role,
            password=DEVELOPMENT_PASSWORD,
            staff_key=DEVELOPMENT_STAFF_KEY if role == "staff" else None,
            now=now,
        )
        added.append(role)
    return added
