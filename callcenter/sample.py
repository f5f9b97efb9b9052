"""A small sample directory for development: the README's first command loads it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.directory import service as directory
from callcenter.directory.models import Line, Staff

# Numbers in Latvia's ranges that belong to nobody here: the sample never rings a real person.
SAMPLE_LINE_DEPARTMENT = "+37167000001"
SAMPLE_LINE_DIRECT = "+37167000002"
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


def load(session: Session, now: datetime) -> bool:
    """Load the sample directory into an empty database; return False if it is not empty."""
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
    # The direct line always answers, so the sample shows a substitute at any hour.
    directory.add_line(
        session, SAMPLE_LINE_DIRECT, target="staff:jberzins", hours="always", overflow="abonenti"
    )
    directory.add_absence(
        session,
        "jberzins",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=14),
        substitute_key="lozola",
        note="atvaļinājums",
    )
    return True
