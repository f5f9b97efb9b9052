"""Who a call rings: the line's target, each absent person replaced by their substitute.

Substitute chains are followed (a substitute who is away is replaced by their own substitute);
a cycle, an inactive person or everybody away drops that person, and the caller then reaches
the line's overflow group or, with nobody left, the offer of a callback. Never silence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.models import Absence, Line, RingGroup, Staff


@dataclass(frozen=True)
class Leg:
    """One number to dial, and for whom: `for_key` is set when a substitute answers for them."""

    staff_key: str
    name: str
    phone: str
    for_key: str | None = None
    for_name: str | None = None
    chain: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["chain"] = list(self.chain)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Leg:
        return cls(**{**data, "chain": tuple(data.get("chain", ()))})


Step = tuple[Leg, ...]


@dataclass(frozen=True)
class Plan:
    """The steps to dial in order; each step rings its legs at once."""

    intended: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...]

    def to_json(self) -> list[list[dict[str, Any]]]:
        return [[leg.to_json() for leg in step] for step in self.steps]

    @staticmethod
    def steps_from_json(data: Iterable[Iterable[dict[str, Any]]]) -> tuple[Step, ...]:
        return tuple(tuple(Leg.from_json(leg) for leg in step) for step in data)


class _Resolver:
    """Resolve people against the absences in force at one instant (one query for all)."""

    def __init__(self, session: Session, at: datetime) -> None:
        self.session = session
        rows = session.scalars(
            select(Absence).where(
                Absence.cancelled_at.is_(None), Absence.starts_at <= at, Absence.ends_at > at
            )
        ).all()
        self.absences = {row.staff_id: row for row in rows}
        self.notes: list[str] = []

    def resolve(self, person: Staff) -> Leg | None:
        """Follow substitutes from `person` to someone present, or None (cycle, all away)."""
        chain = [person.key]
        seen = {person.id}
        current = person
        while current.id in self.absences:
            substitute = self.absences[current.id].substitute
            if substitute.id in seen:
                self.notes.append(f"substitute cycle {' -> '.join([*chain, substitute.key])}")
                return None
            seen.add(substitute.id)
            chain.append(substitute.key)
            current = substitute
        if not current.active:
            self.notes.append(f"{current.key} is inactive (reached via {' -> '.join(chain)})")
            return None
        if current.id == person.id:
            return Leg(person.key, person.name, person.phone, chain=tuple(chain))
        self.notes.append(f"{person.key} is away; substitute {' -> '.join(chain)}")
        return Leg(
            current.key,
            current.name,
            current.phone,
            for_key=person.key,
            for_name=person.name,
            chain=tuple(chain),
        )

    def group_steps(self, group: RingGroup, already: set[str]) -> list[Step]:
        legs: list[Leg] = []
        for member in group.members:
            leg = self.resolve(member.staff)
            if leg is not None and leg.staff_key not in already:
                already.add(leg.staff_key)
                legs.append(leg)
        if not legs:
            return []
        if group.strategy == "simultaneous":
            return [tuple(legs)]
        return [(leg,) for leg in legs]


def plan_for_line(session: Session, line: Line, at: datetime) -> Plan:
    """Plan who the line's call rings at `at`, absences applied."""
    resolver = _Resolver(session, at)
    steps: list[Step] = []
    dialled: set[str] = set()
    if line.target_staff_id is not None:
        person = session.get(Staff, line.target_staff_id)
        assert person is not None
        intended = f"staff:{person.key}"
        leg = resolver.resolve(person)
        if leg is not None:
            steps.append((leg,))
            dialled.add(leg.staff_key)
    else:
        group = session.get(RingGroup, line.target_group_id)
        assert group is not None
        intended = f"group:{group.key}"
        steps.extend(resolver.group_steps(group, dialled))
    if line.overflow_group_id is not None and line.overflow_group_id != line.target_group_id:
        overflow = session.get(RingGroup, line.overflow_group_id)
        assert overflow is not None
        steps.extend(resolver.group_steps(overflow, dialled))
    if not steps:
        resolver.notes.append("nobody available: callback offered")
    return Plan(intended, tuple(steps), tuple(resolver.notes))


def find_line(session: Session, number: str) -> Line | None:
    return session.scalar(select(Line).where(Line.number == number))


def legs_in(steps: Sequence[Step]) -> list[Leg]:
    return [leg for step in steps for leg in step]
