"""Who a call rings: the line's target, each absent person replaced by their substitute.

Substitute chains are followed (a substitute who is away is replaced by their own substitute);
a cycle, an inactive person or everybody away drops that person, and the caller then reaches
the line's overflow group or, with nobody left, the offer of a callback. Never silence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callcenter.directory.snapshot import Directory, Group, LineInfo, Person


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
        return {
            "staff_key": self.staff_key,
            "name": self.name,
            "phone": self.phone,
            "for_key": self.for_key,
            "for_name": self.for_name,
            "chain": list(self.chain),
        }

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
    """Resolve people against the absences in force at one instant."""

    def __init__(self, directory: Directory, at: datetime) -> None:
        self.directory = directory
        self.absences = directory.absent_at(at)
        self.notes: list[str] = []

    def resolve(self, person: Person) -> Leg | None:
        """Follow substitutes from `person` to someone present, or None (cycle, all away)."""
        chain = [person.key]
        seen = {person.id}
        current = person
        while current.id in self.absences:
            substitute = self.directory.people[self.absences[current.id].substitute_id]
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

    def group_steps(self, group: Group, already: set[str]) -> list[Step]:
        legs: list[Leg] = []
        for member_id in group.member_ids:
            leg = self.resolve(self.directory.people[member_id])
            if leg is not None and leg.staff_key not in already:
                already.add(leg.staff_key)
                legs.append(leg)
        if not legs:
            return []
        if group.strategy == "simultaneous":
            # Within a simultaneous <Dial> "the first call to pick up is connected to the
            # current call and the rest are hung up" (Twilio's <Number> documentation): a
            # substitute's phone picks up before its whisper is accepted, so its voicemail
            # would cut the colleagues off. Present people ring together; each substitute
            # rings in a step of their own after them.
            direct: Step = tuple(leg for leg in legs if leg.for_key is None)
            substitutes: list[Step] = [(leg,) for leg in legs if leg.for_key is not None]
            return [direct, *substitutes] if direct else substitutes
        return [(leg,) for leg in legs]


def intended_for(directory: Directory, line: LineInfo) -> str:
    """Name whom the line's calls are for: `staff:KEY` or `group:KEY`."""
    if line.target_staff_id is not None:
        return f"staff:{directory.people[line.target_staff_id].key}"
    assert line.target_group_id is not None
    return f"group:{directory.groups[line.target_group_id].key}"


def plan_for_line(directory: Directory, line: LineInfo, at: datetime) -> Plan:
    """Plan who the line's call rings at `at`, absences applied."""
    resolver = _Resolver(directory, at)
    steps: list[Step] = []
    dialled: set[str] = set()
    if line.target_staff_id is not None:
        leg = resolver.resolve(directory.people[line.target_staff_id])
        if leg is not None:
            steps.append((leg,))
            dialled.add(leg.staff_key)
    else:
        assert line.target_group_id is not None
        steps.extend(resolver.group_steps(directory.groups[line.target_group_id], dialled))
    if line.overflow_group_id is not None and line.overflow_group_id != line.target_group_id:
        steps.extend(resolver.group_steps(directory.groups[line.overflow_group_id], dialled))
    if not steps:
        resolver.notes.append("nobody available: callback offered")
    return Plan(intended_for(directory, line), tuple(steps), tuple(resolver.notes))
