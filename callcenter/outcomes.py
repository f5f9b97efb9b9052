"""How calls end: Twilio's status and dial callbacks, stored once, folded into an outcome.

Twilio delivers every callback at least once and in any order. So each event is stored once
under a unique dedupe key (INSERT ... ON CONFLICT DO NOTHING) and applied only by the request
that inserted it; and the outcome is not advanced event by event but derived again from *all*
of the call's stored events (`derive`), which makes the order they came in irrelevant. The
derived outcome then meets the stored one under a precedence (`settle`), so that a late event
can never move a finished call back.

Outcome precedence, highest first (a lower one never replaces a higher one):

    answered            someone took the call; beats everything, it is what happened
    callback-requested  the caller left a request: their problem is on our list
    after-hours         the line was closed; set when the call starts
    no-answer, busy, failed
                        every step was dialled and none answered (equal rank: the later
                        derivation, which has seen more events, wins among them)
    abandoned           the caller hung up during the notice or while it rang
    in-progress         while it lasts; a derivation that says in-progress changes nothing

Answered, from the events: the dial reports DialCallStatus completed/answered, or a directly
dialled child leg reports in-progress/completed. A substitute's leg counts only through the
dial: its leg answers before the whisper, and a substitute who does not accept is not a
conversation. Missed (no-answer, busy, failed): every step of the plan was dialled and
missed, by the dial's report or by all its legs' own. Abandoned: the call ended (the caller's
leg completed, or the dial reports canceled or that the caller's leg completed) with nobody
answering and steps left to dial. Twilio has no such status.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, lazyload

from callcenter import callbacks, calls, phones
from callcenter.db import is_postgres
from callcenter.models import Call, CallEvent, Staff
from callcenter.routing import Leg, Plan
from callcenter.settings import Settings
from callcenter.snapshot import DirectoryCache

log = logging.getLogger(__name__)

STATUS: Literal["status"] = "status"
DIAL: Literal["dial"] = "dial"

OUTCOMES = (
    "in-progress",
    "abandoned",
    "no-answer",
    "busy",
    "failed",
    "after-hours",
    "callback-requested",
    "answered",
)
RANK = {
    "in-progress": 0,
    "abandoned": 1,
    "no-answer": 2,
    "busy": 2,
    "failed": 2,
    "after-hours": 3,
    "callback-requested": 4,
    "answered": 5,
}
MISSED = frozenset({"no-answer", "busy", "failed"})
# Outcomes that leave a caller waiting for us: each becomes a callback request.
CALLBACK_REASON = {
    "no-answer": "missed",
    "busy": "missed",
    "failed": "missed",
    "abandoned": "abandoned",
    "after-hours": "after-hours",
}
# Twilio's CallStatus values in the order a leg moves through them; the end states share a rank.
LEG_RANK = {
    "queued": 0,
    "initiated": 0,
    "ringing": 1,
    "in-progress": 2,
    "completed": 3,
    "busy": 3,
    "failed": 3,
    "no-answer": 3,
    "canceled": 3,
}
LEG_ENDED = frozenset(status for status, rank in LEG_RANK.items() if rank == 3)
DIAL_ANSWERED = frozenset({"completed", "answered"})

# Longest values we store; Twilio's own are far shorter, so longer ones are refused as bad input.
MAX_SID = 64
MAX_STATUS = 20


class BadEvent(ValueError):
    """A signed callback whose fields cannot be a Twilio event; answered with 400."""


@dataclass(frozen=True)
class Event:
    """One Twilio callback, parsed: what it is about and the key that makes it unique."""

    kind: Literal["status", "dial"]
    leg_sid: str
    status: str
    dedupe_key: str
    payload: dict[str, str]


def _field(form: Mapping[str, str], name: str, limit: int) -> str:
    value = (form.get(name) or "").strip()
    if not value:
        raise BadEvent(f"missing form field(s): {name}")
    if len(value) > limit or not value.isprintable():
        raise BadEvent(f"form field {name} is not a Twilio value")
    return value


def status_event(form: Mapping[str, str]) -> Event:
    """Parse a call StatusCallback: the leg, its status, and its dedupe key."""
    sid = _field(form, "CallSid", MAX_SID)
    status = _field(form, "CallStatus", MAX_STATUS).lower()
    # A retry repeats the SequenceNumber; without one, a leg reports each status once.
    sequence = (form.get("SequenceNumber") or "").strip()[:12] or "-"
    return Event(STATUS, sid, status, f"status:{sid}:{status}:{sequence}", dict(form))


def dial_event(form: Mapping[str, str], step: int) -> Event:
    """Parse a <Dial action> callback; `step` names the dial when Twilio sends no DialCallSid."""
    sid = _field(form, "CallSid", MAX_SID)
    status = _field(form, "DialCallStatus", MAX_STATUS).lower()
    dial_sid = (form.get("DialCallSid") or "").strip()[:MAX_SID]
    # Each dial has its own child leg; without it, the step being dialled tells dials apart.
    which = dial_sid or f"step{step}"
    return Event(DIAL, sid, status, f"dial:{sid}:{which}:{status}", dict(form))


def event_time(payload: Mapping[str, Any], fallback: datetime) -> datetime:
    """Return Twilio's Timestamp (RFC 2822, or ISO 8601) as aware UTC, else `fallback`."""
    raw = str(payload.get("Timestamp") or "").strip()
    if not raw:
        return fallback
    parsed: datetime | None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            return fallback
    if parsed.tzinfo is None:
        # RFC 2822's "-0000" means UTC with no claim about the local zone.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _seconds(payload: Mapping[str, Any], name: str) -> int | None:
    try:
        value = int(str(payload.get(name, "")).strip())
    except ValueError:
        return None
    return value if value >= 0 else None


# Finding the call -------------------------------------------------------------------------


# Built once: a webhook should not spend its milliseconds composing the same SQL again.
_FIND_CALLS = select(Call.id, Call.call_sid).where(
    Call.call_sid.in_(bindparam("sids", expanding=True))
)
_LOCK_CALL = (
    select(Call)
    .where(Call.id == bindparam("call_id"))
    .options(lazyload(Call.answered_by))
    # key_share makes this FOR NO KEY UPDATE on PostgreSQL, which leaves alone the KEY SHARE
    # lock each event's foreign key takes on this row; FOR UPDATE would deadlock two events.
    .with_for_update(of=Call, key_share=True)
    # The row read before the event's insert may be stale by now.
    .execution_options(populate_existing=True)
)
_EVENTS_OF = (
    select(CallEvent).where(CallEvent.call_id == bindparam("call_id")).order_by(CallEvent.id)
)
_INSERT_EVENT = {
    name: dialect.insert(CallEvent.__table__)
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
    .returning(CallEvent.__table__.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def find_parent(session: Session, form: Mapping[str, str]) -> int | None:
    """Return the id of the caller's call an event is about: by ParentCallSid, else CallSid.

    Events of a <Number> leg carry the leg's CallSid and the caller's as ParentCallSid; the
    caller's own leg reports with its CallSid alone.
    """
    parent_sid = (form.get("ParentCallSid") or "").strip()
    sid = (form.get("CallSid") or "").strip()
    sids = [candidate for candidate in (parent_sid, sid) if candidate]
    if not sids:
        return None
    found = {row.call_sid: row.id for row in session.execute(_FIND_CALLS, {"sids": sids})}
    return next((found[candidate] for candidate in sids if candidate in found), None)


def store_event(session: Session, call_id: int, event: Event, now: datetime) -> bool:
    """Insert the event unless its key is stored already; return whether this call inserted it.

    ON CONFLICT DO NOTHING makes two copies arriving at the same moment safe: the second
    waits for the first to commit and then inserts nothing, with no error to roll back.
    """
    statement = _INSERT_EVENT["postgresql" if is_postgres(session) else "sqlite"]
    values = {
        "call_id": call_id,
        "dedupe_key": event.dedupe_key,
        "kind": event.kind,
        "leg_sid": event.leg_sid,
        "status": event.status,
        "payload": event.payload,
        "received_at": now,
    }
    return session.connection().execute(statement, values).first() is not None


def lock_call(session: Session, call_id: int) -> Call:
    """Load the call under a row lock so events applied at once queue up, not overwrite."""
    return session.execute(_LOCK_CALL, {"call_id": call_id}).scalar_one()


def events_of(session: Session, call_id: int) -> Sequence[CallEvent]:
    return session.scalars(_EVENTS_OF, {"call_id": call_id}).all()


# Deriving the outcome -----------------------------------------------------------------------


@dataclass
class Derived:
    """What a call's events say about it, independent of the order they came in."""

    outcome: str = "in-progress"
    ended: bool = False
    ended_at: datetime | None = None
    parent_status: str | None = None
    answered_leg: Leg | None = None
    answered_phone: str | None = None
    answered_step: int | None = None
    answered_at: datetime | None = None
    talk_seconds: int | None = None
    # Indexes into the plan of the steps that were rung.
    dialled_steps: set[int] = field(default_factory=set)


@dataclass
class _LegSeen:
    to: str | None = None
    statuses: dict[str, CallEvent] = field(default_factory=dict)

    def final(self) -> str | None:
        ended = [status for status in self.statuses if status in LEG_ENDED]
        return ended[0] if ended else None


def _best_missed(statuses: Iterable[str]) -> str:
    """Name a step's miss: no-answer if anyone rang out, else busy, else failed."""
    found = set(statuses)
    for status in ("no-answer", "busy", "failed"):
        if status in found:
            return status
    return "no-answer"


def derive(call: Call, events: Sequence[CallEvent]) -> Derived:
    """Fold all of a call's events into its outcome; the result depends on the set, not order."""
    steps = Plan.steps_from_json(call.plan)
    step_of: dict[str, int] = {}
    leg_of: dict[str, Leg] = {}
    for index, step in enumerate(steps):
        for leg in step:
            step_of.setdefault(leg.phone, index)
            leg_of.setdefault(leg.phone, leg)

    derived = Derived()
    children: dict[str, _LegSeen] = {}
    dials: list[CallEvent] = []
    parent_statuses: list[CallEvent] = []
    for event in sorted(events, key=lambda e: e.id or 0):
        status = event.status or ""
        if event.kind == DIAL:
            dials.append(event)
        elif event.leg_sid == call.call_sid:
            parent_statuses.append(event)
        else:
            seen = children.setdefault(event.leg_sid, _LegSeen())
            seen.to = seen.to or (event.payload.get("To") or None)
            seen.statuses.setdefault(status, event)

    for event in parent_statuses:
        status = event.status or ""
        if LEG_RANK.get(status, -1) > LEG_RANK.get(derived.parent_status or "", -1):
            derived.parent_status = status
        if status in LEG_ENDED and not derived.ended:
            derived.ended = True
            derived.ended_at = event_time(event.payload, event.received_at)

    def caller_gone(dial: CallEvent) -> bool:
        return dial.status == "canceled" or (
            dial.status not in DIAL_ANSWERED and dial.payload.get("CallStatus") == "completed"
        )

    for dial in dials:
        if caller_gone(dial) and not derived.ended:
            derived.ended = True
            derived.ended_at = dial.received_at

    # Dials come one after another, so the n-th dial is the n-th step.
    derived.dialled_steps.update(range(min(len(dials), len(steps))))
    for seen in children.values():
        if seen.to in step_of:
            derived.dialled_steps.add(step_of[seen.to])

    # Answered?
    answered_dial = next((d for d in dials if d.status in DIAL_ANSWERED), None)
    answered_sid: str | None = None
    if answered_dial is not None:
        dial_sid = answered_dial.payload.get("DialCallSid")
        if dial_sid in children:
            answered_sid = dial_sid
        else:
            answered_sid = next(
                (
                    sid
                    for sid, seen in children.items()
                    if {"in-progress", "completed"} & seen.statuses.keys()
                    and seen.to in step_of
                    and step_of[seen.to] == dials.index(answered_dial)
                ),
                None,
            )
    else:
        answered_sid = next(
            (
                sid
                for sid, seen in children.items()
                if {"in-progress", "completed"} & seen.statuses.keys()
                and (seen.to not in leg_of or leg_of[seen.to].for_key is None)
            ),
            None,
        )
    if answered_dial is not None or answered_sid is not None:
        derived.outcome = "answered"
        if answered_sid is not None:
            seen = children[answered_sid]
            derived.answered_phone = seen.to
            derived.answered_leg = leg_of.get(seen.to or "")
            derived.answered_step = step_of.get(seen.to or "")
            if "in-progress" in seen.statuses:
                event = seen.statuses["in-progress"]
                derived.answered_at = event_time(event.payload, event.received_at)
            if "completed" in seen.statuses:
                event = seen.statuses["completed"]
                talk = _seconds(event.payload, "CallDuration")
                derived.talk_seconds = talk
                if derived.answered_at is None and talk is not None:
                    ended = event_time(event.payload, event.received_at)
                    derived.answered_at = ended - timedelta(seconds=talk)
        if answered_dial is not None:
            index = dials.index(answered_dial)
            if derived.answered_leg is None and index < len(steps) and len(steps[index]) == 1:
                # One number rang: whoever answered the dial is that one.
                derived.answered_leg = steps[index][0]
                derived.answered_phone = steps[index][0].phone
                derived.answered_step = index
            talk = _seconds(answered_dial.payload, "DialCallDuration")
            if talk is not None:
                derived.talk_seconds = talk
            if derived.answered_at is None and talk is not None:
                derived.answered_at = answered_dial.received_at - timedelta(seconds=talk)
        if derived.answered_step is not None:
            derived.dialled_steps.add(derived.answered_step)
        return derived

    # Not answered (yet).
    missed: dict[int, str] = {}
    for index, dial in enumerate(dials):
        if dial.status in MISSED and not caller_gone(dial) and index < len(steps):
            missed[index] = dial.status or "no-answer"
    final_by_phone = {seen.to: seen.final() for seen in children.values() if seen.to}
    for index, step in enumerate(steps):
        if index not in missed:
            finals = [final_by_phone.get(leg.phone) for leg in step]
            if step and all(status in MISSED for status in finals):
                missed[index] = _best_missed(s for s in finals if s)
    if call.after_hours:
        derived.outcome = "after-hours"
    elif steps and len(missed) == len(steps):
        derived.outcome = missed[len(steps) - 1]
    elif derived.ended:
        if derived.parent_status in MISSED:
            derived.outcome = derived.parent_status or "failed"
        elif not steps:
            # Nobody could be rung at all: the line missed the call, the caller did not quit.
            derived.outcome = "no-answer"
        else:
            derived.outcome = "abandoned"
    return derived


def settle(current: str, derived: str) -> str:
    """Return the outcome to keep: the derived one unless it ranks below the stored one."""
    if derived == "in-progress" or derived not in RANK:
        return current
    if RANK[derived] >= RANK.get(current, 0):
        return derived
    return current


def waiting_for_callback(call: Call) -> bool:
    """Tell whether the call, as it stands, leaves the caller waiting for a callback."""
    if call.outcome in MISSED or call.outcome == "abandoned":
        return True
    # An after-hours caller may still press 1 for a request of their own: wait for the end.
    return call.outcome == "after-hours" and call.ended_at is not None


# Applying events ----------------------------------------------------------------------------


def apply(session: Session, settings: Settings, call_id: int, *, now: datetime) -> Call:
    """Derive the call's outcome from all its events and write it, with what follows from it."""
    call = lock_call(session, call_id)
    derived = derive(call, events_of(session, call_id))
    before_outcome = call.outcome
    before_waiting = waiting_for_callback(call)

    if derived.parent_status and LEG_RANK.get(derived.parent_status, -1) > LEG_RANK.get(
        call.status or "", -1
    ):
        call.status = derived.parent_status
    if derived.ended and call.ended_at is None:
        call.ended_at = derived.ended_at or now
    call.outcome = settle(call.outcome, derived.outcome)

    if derived.outcome == "answered":
        _set_answered(session, call, derived)
        if before_outcome != "answered":
            callbacks.close_on_answer(session, call, now=now)
        return call

    waiting = waiting_for_callback(call)
    if waiting and not before_waiting:
        _request_callback(session, settings, call, now)
    elif waiting and call.outcome != before_outcome:
        callbacks.set_reason(session, call, CALLBACK_REASON.get(call.outcome, "missed"))
    return call


def _set_answered(session: Session, call: Call, derived: Derived) -> None:
    leg = derived.answered_leg
    if leg is not None:
        staff_id = session.scalar(select(Staff.id).where(Staff.key == leg.staff_key))
        call.answered_by_id = staff_id
        call.as_substitute = leg.for_key is not None
    if derived.answered_at is not None:
        call.answered_at = derived.answered_at
        call.ring_seconds = max(0, round((derived.answered_at - call.started_at).total_seconds()))
    if derived.talk_seconds is not None:
        call.talk_seconds = derived.talk_seconds


def _request_callback(session: Session, settings: Settings, call: Call, now: datetime) -> None:
    if call.line_id is None or phones.is_withheld(call.from_number):
        # Not our line, or nobody to call back: a withheld caller was asked for a number.
        return
    reason = CALLBACK_REASON[call.outcome]
    request = callbacks.request_callback(
        session, settings, phone=call.from_number, reason=reason, now=now, call=call
    )
    log.info(
        "call %s %s: callback request %s for %s",
        call.call_sid,
        call.outcome,
        request.id,
        phones.mask(call.from_number),
    )


def record_status(
    session: Session, settings: Settings, form: Mapping[str, str], *, now: datetime
) -> Literal["unknown", "duplicate", "applied"]:
    """Store a status callback once and apply it to the caller's call."""
    event = status_event(form)
    call_id = find_parent(session, form)
    if call_id is None:
        return "unknown"
    if not store_event(session, call_id, event, now):
        return "duplicate"
    apply(session, settings, call_id, now=now)
    return "applied"


def record_dial(
    session: Session, settings: Settings, call: Call, form: Mapping[str, str], *, now: datetime
) -> bool:
    """Store a dial-complete callback once and apply it; return whether it was new."""
    event = dial_event(form, call.step)
    if not store_event(session, call.id, event, now):
        return False
    apply(session, settings, call.id, now=now)
    return True


def dial_ended(
    session: Session,
    settings: Settings,
    call: Call,
    form: Mapping[str, str],
    *,
    now: datetime,
    cache: DirectoryCache | None = None,
) -> calls.Answer | None:
    """Record a dial's end and decide what the caller hears next; None means hang up."""
    new = record_dial(session, settings, call, form, now=now)
    status = (form.get("DialCallStatus") or "").strip().lower()
    if status in DIAL_ANSWERED:
        return None
    if status == "canceled" or form.get("CallStatus") == "completed":
        # The caller hung up: there is nobody left to speak to.
        return None
    call = lock_call(session, call.id)
    if call.status in LEG_ENDED:
        # The caller's own leg already reported its end (callbacks arrive in any order).
        return None
    if not new:
        # A retry of a dial-complete we answered already: make the same move from the same
        # step, so the caller hears the same answer and no step is skipped.
        call.step -= 1
    return calls.next_step(session, settings, call, now, cache)
