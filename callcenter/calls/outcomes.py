"""How calls end: Twilio's status and dial callbacks, stored once, folded into an outcome.

Twilio delivers every callback at least once and in any order. So each event is stored once
under a unique dedupe key (INSERT ... ON CONFLICT DO NOTHING) and applied only by the request
that inserted it; and the outcome is not advanced event by event but derived again from *all*
of the call's stored events (`derive`), which makes the order they came in irrelevant. The
derived outcome then meets the stored one under a precedence (`settle`), so that a late event
can never move a finished call back.

The write transaction is kept short, because on SQLite it holds the one write lock every other
worker waits for: the call and its events are read and the outcome decided first, and the
writing only stores the event, checks under the call's row lock that nothing else changed
meanwhile (deciding again if something did) and writes the columns that change
(`store_and_apply`).

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
dialled child leg reports in-progress/completed. A substitute's leg counts only when their key
press of 1 was received and stored (an `accept` event, written by the whisper route under the
leg's CallSid, which the <Dial action> request names as DialCallSid): its phone picks up
before the whisper, and a substitute who does not accept is not a conversation, whatever
DialBridged says. Missed (no-answer, busy, failed): every step of the plan was dialled and
missed, by the dial's report or by all its legs' own. Abandoned: the call ended (the caller's
leg completed, or the dial reports canceled or that the caller's leg completed) with nobody
answering and steps left to dial. Twilio has no such status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sqlalchemy import (
    Boolean,
    String,
    Table,
    Text,
    any_,
    bindparam,
    column,
    exists,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, lazyload

from callcenter import phones
from callcenter.calls import callbacks, outage
from callcenter.calls import intake as calls
from callcenter.calls.models import Call, CallEvent
from callcenter.calls.routing import Leg, Plan
from callcenter.calls.states import EventKind, Outcome
from callcenter.db import Prepared, Together, is_postgres, json_records, recordset_columns
from callcenter.directory.models import Staff
from callcenter.directory.snapshot import DirectoryCache
from callcenter.settings import Settings
from callcenter.twilio_values import parse_twilio_time

log = logging.getLogger(__name__)

STATUS: Literal[EventKind.STATUS] = EventKind.STATUS
DIAL: Literal[EventKind.DIAL] = EventKind.DIAL
# A substitute pressed 1 in the whisper (stored by the whisper route).
ACCEPT: Literal[EventKind.ACCEPT] = EventKind.ACCEPT

# A call's outcome only moves up this ranking (settle), never back.
RANK: dict[str, int] = {
    Outcome.IN_PROGRESS: 0,
    Outcome.ABANDONED: 1,
    Outcome.NO_ANSWER: 2,
    Outcome.BUSY: 2,
    Outcome.FAILED: 2,
    Outcome.AFTER_HOURS: 3,
    Outcome.CALLBACK_REQUESTED: 4,
    Outcome.ANSWERED: 5,
}
MISSED: frozenset[str] = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED})
# Outcomes that leave a caller waiting for us: each becomes a callback request.
CALLBACK_REASON: dict[str, str] = {
    Outcome.NO_ANSWER: "missed",
    Outcome.BUSY: "missed",
    Outcome.FAILED: "missed",
    Outcome.ABANDONED: "abandoned",
    Outcome.AFTER_HOURS: "after-hours",
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


# What an event keeps of Twilio's form: the fields `derive` reads and those that say what
# happened, each bounded. (Keeping the whole form let one callback write a 1 MB row.)
KEPT_FIELDS = (
    "CallSid",
    "From",
    "ParentCallSid",
    "To",
    "CallStatus",
    "CallDuration",
    "Timestamp",
    "SequenceNumber",
    "CallbackSource",
    "Direction",
    "DialCallSid",
    "DialCallStatus",
    "DialCallDuration",
    "DialBridged",
)
MAX_KEPT_CHARS = 256


def kept_fields(form: Mapping[str, str]) -> dict[str, str]:
    """The part of a callback's form an event stores."""
    return {name: str(form[name])[:MAX_KEPT_CHARS] for name in KEPT_FIELDS if form.get(name)}


class BadEvent(ValueError):
    """A signed callback whose fields cannot be a Twilio event; answered with 400."""


@dataclass(frozen=True)
class Event:
    """One Twilio callback, parsed: what it is about and the key that makes it unique."""

    kind: EventKind
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
    _checked_time(form)
    return Event(STATUS, sid, status, f"status:{sid}:{status}:{sequence}", kept_fields(form))


def dial_event(form: Mapping[str, str], step: int) -> Event:
    """Parse a <Dial action> callback; `step` names the dial when Twilio sends no DialCallSid."""
    sid = _field(form, "CallSid", MAX_SID)
    status = _field(form, "DialCallStatus", MAX_STATUS).lower()
    if status in DIAL_ANSWERED and (form.get("DialBridged") or "").strip().lower() == "false":
        # The callee's phone picked up but was never put through to the caller: a substitute
        # who declined in the whisper, or a voicemail that pressed nothing. For the caller
        # nobody answered, so the call moves on (the raw form is kept in the payload).
        status = "no-answer"
    dial_sid = (form.get("DialCallSid") or "").strip()[:MAX_SID]
    _checked_time(form)
    # Each dial has its own child leg; without it, the step being dialled tells dials apart.
    which = dial_sid or f"step{step}"
    return Event(DIAL, sid, status, f"dial:{sid}:{which}:{status}", kept_fields(form))


def accept_event(form: Mapping[str, str]) -> Event:
    """Parse the whisper's key press of 1 on a substitute's leg.

    Twilio's request to a <Number url> carries the callee's leg as CallSid and the caller's
    call as ParentCallSid; the <Gather action> from that TwiML runs on the same leg and adds
    Digits. The leg's CallSid is what the <Dial action> later reports as DialCallSid.
    """
    sid = _field(form, "CallSid", MAX_SID)
    _field(form, "ParentCallSid", MAX_SID)
    return Event(ACCEPT, sid, "accepted", f"accept:{sid}", dict(form))


def _checked_time(form: Mapping[str, str]) -> None:
    """Refuse an event whose Timestamp is there but is no time (the same 400 on every route)."""
    raw = (form.get("Timestamp") or "").strip()
    if raw:
        try:
            parse_twilio_time(raw)
        except ValueError:
            raise BadEvent(f"Timestamp is not a time: {raw[:40]!r}") from None


def event_time(payload: Mapping[str, Any], fallback: datetime) -> datetime:
    """Return Twilio's Timestamp (RFC 2822, or ISO 8601) as aware UTC, else `fallback`."""
    raw = str(payload.get("Timestamp") or "").strip()
    if not raw:
        return fallback
    try:
        return parse_twilio_time(raw)
    except ValueError:
        # Stored before times were checked on arrival: the time we received it stands in.
        return fallback


def _seconds(payload: Mapping[str, Any], name: str) -> int | None:
    try:
        value = int(str(payload.get(name, "")).strip())
    except ValueError:
        return None
    return value if value >= 0 else None


# Reading and storing -----------------------------------------------------------------------

# A callback answers in milliseconds and most of them run this path, so it speaks Core to the
# connection with statements built once: no ORM objects are loaded or flushed per event, and
# no SQL is composed again per request. The ORM appears only on the rare branches that open,
# close or relabel a callback request (`callbacks` works on a `Call`). (Declarative classes
# type `__table__` as any FromClause; these are Tables.)
_CALLS = cast(Table, Call.__table__)
_EVENTS = cast(Table, CallEvent.__table__)


@dataclass(frozen=True, slots=True)
class CallRow:
    """The columns of a call that its outcome depends on or sets."""

    id: int
    call_sid: str
    to_number: str
    plan: list[list[dict[str, Any]]]
    after_hours: bool
    line_id: int | None
    from_number: str
    started_at: datetime
    status: str | None
    outcome: str
    ended_at: datetime | None
    answered_by_id: int | None
    as_substitute: bool
    answered_at: datetime | None
    ring_seconds: int | None
    talk_seconds: int | None


@dataclass(frozen=True, slots=True)
class EventRow:
    """The columns of a stored event that `derive` reads, and its key."""

    id: int
    dedupe_key: str
    kind: str
    leg_sid: str
    status: str | None
    payload: dict[str, Any]
    received_at: datetime


_CALL_COLUMNS = [_CALLS.c[name] for name in CallRow.__dataclass_fields__]
# Two fixed parameters instead of an expanding IN: no SQL rendered again per request.
# The reads and the insert every event makes run on the DB-API cursor (db.Prepared); the
# update stays SQLAlchemy's, which computes `updated_at` (its onupdate).
_FIND = select(*_CALL_COLUMNS).where(
    _CALLS.c.call_sid.in_([bindparam("parent_sid"), bindparam("sid")])
)
_FIND_CALLS = Prepared(_FIND)
_READ = select(*_CALL_COLUMNS).where(_CALLS.c.id == bindparam("call_id"))
_READ_CALL = Prepared(_READ)
# key_share makes this FOR NO KEY UPDATE on PostgreSQL, which leaves alone the KEY SHARE lock
# each event's foreign key takes on this row; FOR UPDATE would deadlock two events.
_LOCK_CALL_ROW = Prepared(_READ.with_for_update(of=_CALLS, key_share=True))
_LOCK_CALLS = Prepared(_FIND.with_for_update(of=_CALLS, key_share=True))
_EVENTS_OF = Prepared(
    select(*(_EVENTS.c[name] for name in EventRow.__dataclass_fields__))
    .where(_EVENTS.c.call_id == bindparam("call_id"))
    .order_by(_EVENTS.c.id)
)
_INSERT_EVENT = {
    name: Prepared(
        dialect.insert(_EVENTS)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_EVENTS.c.id)
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_EVENT_COLUMNS = [_EVENTS.c[name] for name in EventRow.__dataclass_fields__]
# What an insert gives: the call and the event's columns, less its id.
_EVENT_VALUES = ("call_id", *(column.name for column in _EVENT_COLUMNS if column.name != "id"))


def _insert_and_read_events() -> Prepared:
    """PostgreSQL: insert the event unless stored; if it was new, return all the call's events.

    One statement where there were two (the insert, then the read), for the status callback,
    which has locked the call first: the read sees every event committed before that lock was
    granted, and the new event comes from the insert's RETURNING (one statement's snapshot does
    not see its own insert). No row: the event was stored already.
    """
    new = (
        postgresql.insert(_EVENTS)
        .values({name: bindparam(name, type_=_EVENTS.c[name].type) for name in _EVENT_VALUES})
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(*_EVENT_COLUMNS)
        .cte("new")
    )
    earlier = select(*_EVENT_COLUMNS).where(
        _EVENTS.c.call_id == bindparam("call_id"), exists(select(new.c.id))
    )
    return Prepared(select(*new.c).union_all(earlier).order_by("id"))


_INSERT_AND_READ_EVENTS = _insert_and_read_events()

# PostgreSQL, a batch of status events (record_statuses): the calls of all their sids under
# the row lock, in the order of their CallSids (the order GroupCommit runs writes in).
_LOCK_BY_SIDS = Prepared(
    select(*_CALL_COLUMNS)
    .where(_CALLS.c.call_sid == any_(bindparam("sids", type_=postgresql.ARRAY(String()))))
    .order_by(_CALLS.c.call_sid)
    .with_for_update(of=_CALLS, key_share=True)
)


def _insert_and_read_batch() -> Prepared:
    """PostgreSQL: insert a batch's events unless stored; return the new ones, then all the
    earlier events of every call that got one, each with its call and whether it is new.

    `_insert_and_read_events` for many events in one statement (the events as one JSON
    parameter, `_event_records`): its calls are locked first, so the read sees every event
    committed before the locks were granted, and the new events come from the insert's
    RETURNING. Two copies of one event in the batch are stored once (ON CONFLICT skips the
    second). One event keeps the statement of its own: through arrays it took about a
    quarter longer in-process. (One array per column cost the workers more to bind than the
    rest of the statement: psycopg dumps each element; a JSON text is one string.)
    """
    names = list(_EVENT_VALUES)
    types = recordset_columns(_EVENTS, names, postgresql.dialect())
    returned = ", ".join(c.name for c in _EVENT_COLUMNS)
    sql = f"""
        WITH new AS (
            INSERT INTO {_EVENTS.name} ({", ".join(names)})
            SELECT {", ".join("r." + name for name in names)}
            FROM json_to_recordset(CAST(:events AS json)) AS r({types})
            ORDER BY r.n
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING call_id, {returned}
        )
        SELECT true, call_id, {returned} FROM new
        UNION ALL
        SELECT false, e.call_id, {", ".join("e." + c.name for c in _EVENT_COLUMNS)}
        FROM {_EVENTS.name} AS e WHERE e.call_id IN (SELECT call_id FROM new)
    """  # noqa: S608
    statement = text(sql).bindparams(bindparam("events", type_=Text()))
    return Prepared(
        statement.columns(
            column("new", Boolean()),
            column("call_id", _EVENTS.c.call_id.type),
            *(column(c.name, c.type) for c in _EVENT_COLUMNS),
        )
    )


def _event_records(rows: list[dict[str, Any]]) -> str:
    """The batch's events as `_insert_and_read_batch` reads them (`db.json_records`), each
    value bound as its column binds it (the payload's JSON text, the time in UTC)."""

    def bound(name: str, value: Any) -> Any:
        process = _EVENT_BINDS[name]
        return value if process is None or value is None else process(value)

    return json_records({name: bound(name, value) for name, value in row.items()} for row in rows)


# The bind processors of the events' columns on PostgreSQL (None: bound as it is).
_EVENT_BINDS = {
    name: _EVENTS.c[name]
    .type.dialect_impl(postgresql.dialect())
    .bind_processor(postgresql.dialect())
    for name in _EVENT_VALUES
}
_INSERT_AND_READ_BATCH = _insert_and_read_batch()


def _store_for_call() -> Prepared:
    """SQLite: insert the event for its call unless stored; if new, return the call and events.

    One statement where there were three (find the call, insert the event, read the call's
    events), for the status callback, whose transaction holds SQLite's one write lock from its
    start: the fewer statements it runs under that lock, the sooner the next writer has it
    (benchmarks/README.md). The call is found by the event's sids as `find_parent` finds it
    (the parent's row first). RETURNING gives the call's row as a JSON array (CallRow's
    columns) and all the call's events as a JSON array of arrays (EventRow's columns), the new
    one among them (SQLite's RETURNING subqueries see the statement's own insert). No row: the
    event was stored already, or the call is not in the log.
    """
    quote = sqlite.dialect().identifier_preparer.quote

    def json_row(alias: str, columns: Iterable[Any]) -> str:
        return "json_array(" + ", ".join(f"{alias}.{quote(c.name)}" for c in columns) + ")"

    values = [name for name in _EVENT_VALUES if name != "call_id"]
    # Every name here is the schema's own; the values are bound parameters.
    sql = f"""
        INSERT INTO {_EVENTS.name} (call_id, {", ".join(values)})
        SELECT id, {", ".join(":" + name for name in values)}
        FROM {_CALLS.name} WHERE call_sid IN (:parent_sid, :sid)
        ORDER BY call_sid = :parent_sid DESC LIMIT 1
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING
            (SELECT {json_row("c", _CALL_COLUMNS)} FROM {_CALLS.name} AS c
             WHERE c.id = {_EVENTS.name}.call_id),
            (SELECT json_group_array({json_row("e", _EVENT_COLUMNS)}) FROM {_EVENTS.name} AS e
             WHERE e.call_id = {_EVENTS.name}.call_id)
    """  # noqa: S608
    statement = text(sql).bindparams(
        *(bindparam(name, type_=_EVENTS.c[name].type) for name in values),
        bindparam("parent_sid", type_=String()),
        bindparam("sid", type_=String()),
    )
    return Prepared(statement.columns(column("call"), column("events")))


_STORE_FOR_CALL = _store_for_call()
_UPDATE_CALL = update(_CALLS).where(_CALLS.c.id == bindparam("call_id"))
_STAFF_ID = Prepared(select(Staff.id).where(Staff.key == bindparam("key")))
# The call as an ORM object, for `callbacks`; who answered is not needed there.
_LOAD_CALL = select(Call).where(Call.id == bindparam("call_id")).options(lazyload(Call.answered_by))
# The same under the row lock, for `dial_ended`, which hands the call on to routing. It loads
# the row as this transaction wrote it, even over a `Call` the session loaded before.
_LOCK_CALL = _LOAD_CALL.with_for_update(of=Call, key_share=True).execution_options(
    populate_existing=True
)


def find_parent(session: Session, form: Mapping[str, str], *, lock: bool = False) -> CallRow | None:
    """Return the caller's call an event is about: by ParentCallSid, else CallSid.

    Events of a <Number> leg carry the leg's CallSid and the caller's as ParentCallSid; the
    caller's own leg reports with its CallSid alone. `lock`: under the row lock `lock_row`
    takes, so that the events of one call are applied one after the other.
    """
    params = _sids(form)
    if params is None:
        return None
    rows = (_LOCK_CALLS if lock else _FIND_CALLS).rows(session, params)
    found = {row[1]: CallRow(*row) for row in rows}
    return found.get(params["parent_sid"]) or found.get(params["sid"])


def _sids(form: Mapping[str, str]) -> dict[str, str] | None:
    """The sids that name an event's call, the caller's (ParentCallSid) first; None: no sid."""
    parent_sid = (form.get("ParentCallSid") or "").strip()
    sid = (form.get("CallSid") or "").strip()
    if not (parent_sid or sid):
        return None
    return {"parent_sid": parent_sid or sid, "sid": sid or parent_sid}


def store_for_call(
    session: Session, event: Event, now: datetime
) -> tuple[CallRow, list[EventRow]] | None:
    """SQLite: store a call's event unless stored; if this stored it, the call and its events.

    For a transaction that holds the write lock (BEGIN IMMEDIATE), as a status callback's
    does: nothing changes between the call's read and the events'. None: the event was stored
    already, or no call of the event's sids is in the log (`find_parent` tells which).
    """
    sids = _sids(event.payload)
    if sids is None:
        return None
    rows = _STORE_FOR_CALL.rows(session, {**_event_fields(event, now), **sids})
    if not rows:
        return None
    ((call, events),) = rows
    # The values as JSON gives them (text for times, 0/1 for booleans, the payload's text),
    # read as the columns' own rows are.
    found = [EventRow(*_EVENTS_OF.read(session, values)) for values in json.loads(events)]
    found.sort(key=lambda stored: stored.id)
    return CallRow(*_READ_CALL.read(session, json.loads(call))), found


def read_call(session: Session, call_id: int) -> CallRow:
    """Read the call without a lock, to decide on before writing."""
    (row,) = _READ_CALL.rows(session, {"call_id": call_id})
    return CallRow(*row)


def lock_row(session: Session, call_id: int) -> CallRow:
    """Read the call under a row lock so events applied at once queue up, not overwrite."""
    (row,) = _LOCK_CALL_ROW.rows(session, {"call_id": call_id})
    return CallRow(*row)


def lock_call(session: Session, call_id: int) -> Call:
    """Load the call as an ORM object under the same row lock as `lock_row`."""
    return session.execute(_LOCK_CALL, {"call_id": call_id}).scalar_one()


def events_of(session: Session, call_id: int) -> list[EventRow]:
    return [EventRow(*row) for row in _EVENTS_OF.rows(session, {"call_id": call_id})]


def _event_values(call_id: int, event: Event, now: datetime) -> dict[str, Any]:
    return {"call_id": call_id, **_event_fields(event, now)}


def _event_fields(event: Event, now: datetime) -> dict[str, Any]:
    """The event's columns as stored, less the call it belongs to."""
    return {
        "dedupe_key": event.dedupe_key,
        "kind": event.kind,
        "leg_sid": event.leg_sid,
        "status": event.status,
        "payload": event.payload,
        "received_at": now,
    }


def store_event(session: Session, call_id: int, event: Event, now: datetime) -> int | None:
    """Insert the event unless its key is stored already; return its id if this call did.

    ON CONFLICT DO NOTHING makes two copies arriving at the same moment safe: the second
    waits for the first to commit and then inserts nothing, with no error to roll back.
    """
    statement = _INSERT_EVENT["postgresql" if is_postgres(session) else "sqlite"]
    found: int | None = statement.scalar(session, _event_values(call_id, event, now))
    return found


def store_and_read(
    session: Session, call_id: int, event: Event, now: datetime
) -> list[EventRow] | None:
    """Store the event unless stored already; if this stored it, return all the call's events.

    For a caller that holds the call's row lock (find_parent(lock=True)). On PostgreSQL one
    statement; on SQLite, whose transaction holds the write lock from its start, two.
    """
    if not is_postgres(session):
        if store_event(session, call_id, event, now) is None:
            return None
        return events_of(session, call_id)
    rows = _INSERT_AND_READ_EVENTS.rows(session, _event_values(call_id, event, now))
    return [EventRow(*row) for row in rows] or None


# Deriving the outcome -----------------------------------------------------------------------


class CallFacts(Protocol):
    """What `derive` reads of a call: a `Call`, or the `CallRow` the webhook reads."""

    @property
    def call_sid(self) -> str: ...
    @property
    def plan(self) -> list[list[dict[str, Any]]]: ...
    @property
    def after_hours(self) -> bool: ...


class EventFacts(Protocol):
    """What `derive` reads of an event: a `CallEvent`, or an `EventRow`."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def leg_sid(self) -> str: ...
    @property
    def status(self) -> str | None: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def received_at(self) -> datetime: ...


@dataclass
class Derived:
    """What a call's events say about it, independent of the order they came in."""

    outcome: str = "in-progress"
    ended: bool = False
    ended_at: datetime | None = None
    parent_status: str | None = None
    answered_leg: Leg | None = None
    answered_step: int | None = None
    answered_at: datetime | None = None
    talk_seconds: int | None = None
    # Indexes into the plan of the steps that were rung.
    dialled_steps: set[int] = field(default_factory=set)


@dataclass
class _LegSeen:
    to: str | None = None
    statuses: dict[str, EventFacts] = field(default_factory=dict)

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


def derive(call: CallFacts, events: Sequence[EventFacts]) -> Derived:
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
    dials: list[EventFacts] = []
    parent_statuses: list[EventFacts] = []
    accepted: set[str] = set()
    for event in sorted(events, key=lambda e: e.id or 0):
        status = event.status or ""
        if event.kind == ACCEPT:
            accepted.add(event.leg_sid)
        elif event.kind == DIAL:
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

    def caller_gone(dial: EventFacts) -> bool:
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

    def counts(dial: EventFacts) -> bool:
        """Tell whether a dial reported as answered was a conversation.

        A step that rings only substitutes was answered only if the leg's key press of 1 was
        stored (a step that mixes present people and substitutes is from plans made before
        substitutes rang on their own; Twilio's DialBridged decides there, as it did).
        """
        if dial.status not in DIAL_ANSWERED:
            return False
        index = dials.index(dial)
        if index >= len(steps) or not all(leg.for_key for leg in steps[index]):
            return True
        return dial.payload.get("DialCallSid") in accepted

    # Answered?
    answered_dial = next((d for d in dials if counts(d)), None)
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
                and (seen.to not in leg_of or leg_of[seen.to].for_key is None or sid in accepted)
            ),
            None,
        )
    if answered_dial is not None or answered_sid is not None:
        derived.outcome = "answered"
        if answered_sid is not None:
            seen = children[answered_sid]
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
        if caller_gone(dial) or index >= len(steps):
            continue
        if dial.status in MISSED:
            missed[index] = dial.status or "no-answer"
        elif dial.status in DIAL_ANSWERED:
            # Picked up but never accepted (see `counts`): nobody answered that step.
            missed[index] = "no-answer"
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


def waiting_for_callback(outcome: str, ended_at: datetime | None) -> bool:
    """Tell whether a call with this outcome leaves the caller waiting for a callback."""
    if outcome in MISSED or outcome == "abandoned":
        return True
    # An after-hours caller may still press 1 for a request of their own: wait for the end.
    return outcome == "after-hours" and ended_at is not None


# Applying events ----------------------------------------------------------------------------


FollowUp = Literal["close-requests", "request-callback", "relabel-request"]


@dataclass(frozen=True, slots=True)
class Change:
    """What a call's events make of its row: the columns that change, and what follows."""

    outcome: str
    values: dict[str, Any]
    follow_up: FollowUp | None


def decide(
    session: Session, call: CallRow, events: Sequence[EventFacts], *, now: datetime
) -> Change:
    """Derive the call's outcome from all its events and say what to write; write nothing."""
    derived = derive(call, events)
    values: dict[str, Any] = {}
    if derived.parent_status and LEG_RANK.get(derived.parent_status, -1) > LEG_RANK.get(
        call.status or "", -1
    ):
        values["status"] = derived.parent_status
    ended_at = call.ended_at
    if derived.ended and ended_at is None:
        ended_at = values["ended_at"] = derived.ended_at or now
    outcome = values["outcome"] = settle(call.outcome, derived.outcome)

    follow_up: FollowUp | None = None
    if derived.outcome == "answered":
        values.update(_answered_values(session, call, derived))
        if call.outcome != "answered":
            follow_up = "close-requests"
    elif waiting_for_callback(outcome, ended_at):
        if not waiting_for_callback(call.outcome, call.ended_at):
            follow_up = "request-callback"
        elif outcome != call.outcome:
            follow_up = "relabel-request"
    # Only what differs is written, and nothing when nothing does, as the ORM would.
    changed = {name: value for name, value in values.items() if getattr(call, name) != value}
    return Change(outcome, changed, follow_up)


def _answered_values(session: Session, call: CallRow, derived: Derived) -> dict[str, Any]:
    """Return who answered, ring time and talk time, as column values."""
    values: dict[str, Any] = {}
    leg = derived.answered_leg
    if leg is not None:
        values["answered_by_id"] = _STAFF_ID.scalar(session, {"key": leg.staff_key})
        values["as_substitute"] = leg.for_key is not None
    if derived.answered_at is not None:
        values["answered_at"] = derived.answered_at
        ring = (derived.answered_at - call.started_at).total_seconds()
        values["ring_seconds"] = max(0, round(ring))
    if derived.talk_seconds is not None:
        values["talk_seconds"] = derived.talk_seconds
    return values


def write(
    session: Session, settings: Settings, call: CallRow, change: Change, now: datetime
) -> None:
    """Write a decided change and open, close or relabel the caller's callback request."""
    if change.values:
        # The parameters' names choose the SET columns, so one statement serves every change;
        # `updated_at` follows by its onupdate.
        session.connection().execute(_UPDATE_CALL, {"call_id": call.id, **change.values})
    if change.follow_up is None:
        return
    if change.follow_up == "close-requests" and not callbacks.any_open_on_answer(
        session, phone=call.from_number, started_at=call.started_at, now=now
    ):
        return
    # `callbacks` reads only what a call never changes (its id, caller, line, start), so a
    # `Call` this session holds already (dial-complete's) serves as it is.
    orm_call = session.execute(_LOAD_CALL, {"call_id": call.id}).scalar_one()
    if change.follow_up == "close-requests":
        callbacks.close_on_answer(session, orm_call, now=now)
    elif change.follow_up == "request-callback":
        _request_callback(session, settings, orm_call, change.outcome, now)
    else:
        reason = CALLBACK_REASON.get(change.outcome, "missed")
        callbacks.set_reason(session, orm_call, reason)


def store_and_apply(
    session: Session,
    settings: Settings,
    call: CallRow,
    event: Event,
    *,
    now: datetime,
    locked: bool = False,
) -> bool:
    """Store the event once and apply it to the call; return whether it was new.

    The event is inserted unless its key is stored (a copy arriving at the same moment waits
    for the first to commit, then inserts nothing); then, under the call's row lock, the call
    and all its events are read and the outcome is decided from them and written. Events of
    one call queue on the lock, and each decides from every event committed before it.
    `locked`: `call` was read under that lock already (find_parent(lock=True)).
    On SQLite the webhook's transaction holds the one write lock from its start (BEGIN
    IMMEDIATE), so nothing changes between these statements.
    """
    if locked:
        events = store_and_read(session, call.id, event, now)
        if events is None:
            return False
        current = call
    else:
        if store_event(session, call.id, event, now) is None:
            return False
        current = lock_row(session, call.id)
        events = events_of(session, call.id)
    apply(session, settings, current, events, now)
    return True


def apply(
    session: Session, settings: Settings, call: CallRow, events: Sequence[EventRow], now: datetime
) -> None:
    """Decide the call's outcome from all its events (read under its lock) and write it."""
    write(session, settings, call, decide(session, call, events, now=now), now)


def _request_callback(
    session: Session, settings: Settings, call: Call, outcome: str, now: datetime
) -> None:
    if call.line_id is None or phones.is_withheld(call.from_number):
        # Not our line, or nobody to call back: a withheld caller was asked for a number.
        return
    reason = CALLBACK_REASON[outcome]
    request = callbacks.request_callback(
        session, settings, phone=call.from_number, reason=reason, now=now, call=call
    )
    log.info(
        "call %s %s: callback request %s for %s",
        call.call_sid,
        outcome,
        request.id,
        phones.mask(call.from_number),
    )


def record_accept(
    session: Session, settings: Settings, form: Mapping[str, str], *, now: datetime
) -> bool:
    """Store a substitute's key press of 1 on their leg; False when the call is unknown."""
    event = accept_event(form)
    call = find_parent(session, form)
    if call is None:
        return False
    store_and_apply(session, settings, call, event, now=now)
    return True


def fallback_dial_ended(
    session: Session, settings: Settings, call: Call, form: Mapping[str, str], *, now: datetime
) -> None:
    """Record the end of the dial to FALLBACK_NUMBER like any dial's."""
    store_and_apply(
        session, settings, read_call(session, call.id), dial_event(form, call.step), now=now
    )


def record_status(
    session: Session, settings: Settings, event: Event, *, now: datetime
) -> Literal["unknown", "duplicate", "applied"]:
    """Store a parsed status callback once and apply it to the caller's call.

    Rules: a call we have no row of was answered by the fallback while the database was out
    of reach; its row is written now (`outage.record_unknown_call`), so the log is complete.
    """
    if is_postgres(session):
        call = find_parent(session, event.payload, lock=True)
    else:
        # Under the write lock since BEGIN IMMEDIATE: found, stored and read in one statement.
        stored = store_for_call(session, event, now)
        if stored is not None:
            call, events = stored
            apply(session, settings, _named(session, call, event), events, now)
            return "applied"
        call = find_parent(session, event.payload)
        if call is not None:
            return "duplicate"
    if call is None:
        parent = event.payload.get("ParentCallSid")
        outage.record_unknown_call(
            session,
            call_sid=parent or event.leg_sid,
            from_number=event.payload.get("From", ""),
            # A child leg's To is the person dialled, not our line.
            to_number="" if parent else event.payload.get("To", ""),
            started_at=event_time(event.payload, now),
        )
        call = find_parent(session, event.payload, lock=True)
    else:
        call = _named(session, call, event)
    if call is None:
        return "unknown"
    if not store_and_apply(session, settings, call, event, now=now, locked=True):
        return "duplicate"
    return "applied"


StatusResult = Literal["unknown", "duplicate", "applied"]


def _record_statuses(
    session: Session, writes: list[tuple[Settings, Event, datetime]]
) -> list[StatusResult]:
    """Store a batch's status events once each and apply them to their calls, as
    `record_status` does one by one; return what became of each.

    On PostgreSQL in two statements for the whole batch where one by one there are two for
    each: all the calls under their row locks (in the order of their CallSids), then the
    insert of every event and the read of their calls' events (`_insert_and_read_batch`).
    Each call is then decided from all its events, as alone; several new events of one call
    are applied one after the other, each with the events up to it and its own time. The
    rare events this does not cover (a call not in the log, or written from a child leg's
    callback) go through `record_status` afterwards. SQLite runs them one by one: under its
    write lock each is one statement already (`store_for_call`).
    """
    if len(writes) == 1 or not is_postgres(session):
        return [record_status(session, settings, event, now=now) for settings, event, now in writes]
    sids_of = [_sids(event.payload) for _settings, event, _now in writes]
    wanted = sorted({sid for sids in sids_of if sids is not None for sid in sids.values()})
    found = {row[1]: CallRow(*row) for row in _LOCK_BY_SIDS.rows(session, {"sids": wanted})}
    results: list[StatusResult | None] = [None] * len(writes)
    alone: list[int] = []
    batched: list[tuple[int, CallRow]] = []
    for index, sids in enumerate(sids_of):
        call = None if sids is None else found.get(sids["parent_sid"]) or found.get(sids["sid"])
        if call is None or call.to_number == outage.UNKNOWN:
            alone.append(index)
        else:
            batched.append((index, call))
    if batched:
        _apply_batch(session, writes, batched, results)
    for index in alone:
        settings, event, now = writes[index]
        results[index] = record_status(session, settings, event, now=now)
    return [result for result in results if result is not None]


def _apply_batch(
    session: Session,
    writes: list[tuple[Settings, Event, datetime]],
    batched: list[tuple[int, CallRow]],
    results: list[StatusResult | None],
) -> None:
    """PostgreSQL: store the batched events (their calls locked) and apply the new ones."""
    records = _event_records(
        [_event_values(call.id, writes[index][1], writes[index][2]) for index, call in batched]
    )
    stored: dict[int, list[EventRow]] = {}
    new_keys: set[str] = set()
    for new, call_id, *values in _INSERT_AND_READ_BATCH.rows(session, {"events": records}):
        row = EventRow(*values)
        stored.setdefault(call_id, []).append(row)
        if new:
            new_keys.add(row.dedupe_key)
    # The writes whose event this stored, by call; a second copy in the batch is a duplicate.
    applied: dict[int, list[int]] = {}
    calls = {call.id: call for _index, call in batched}
    for index, call in batched:
        key = writes[index][1].dedupe_key
        if key in new_keys:
            new_keys.discard(key)
            results[index] = "applied"
            applied.setdefault(call.id, []).append(index)
        else:
            results[index] = "duplicate"
    for call_id, indexes in applied.items():
        events = sorted(stored[call_id], key=lambda row: row.id)
        # Each of this call's new events applied with those before it, as one by one.
        by_key = {writes[index][1].dedupe_key: index for index in indexes}
        mine = [row for row in events if row.dedupe_key in by_key]
        for number, row in enumerate(mine):
            settings, _event, now = writes[by_key[row.dedupe_key]]
            later = {other.dedupe_key for other in mine[number + 1 :]}
            upto = [other for other in events if other.dedupe_key not in later]
            current = calls[call_id] if number == 0 else lock_row(session, call_id)
            apply(session, settings, current, upto, now)


# Status events, run by a batch all at once (runtime.write_together).
STATUS_WRITES: Together[Session, tuple[Settings, Event, datetime], StatusResult] = Together(
    _record_statuses
)


def _named(session: Session, call: CallRow, event: Event) -> CallRow:
    """The call, with our line named if it was written from a child leg's callback."""
    if call.to_number == outage.UNKNOWN and not event.payload.get("ParentCallSid"):
        # The caller's own leg names our line.
        outage.name_the_line(session, call.id, event.payload.get("To", ""))
        return lock_row(session, call.id)
    return call


def dial_ended(
    session: Session,
    settings: Settings,
    call: Call,
    form: Mapping[str, str],
    *,
    now: datetime,
    cache: DirectoryCache,
) -> calls.Answer | None:
    """Record a dial's end and decide what the caller hears next; None means hang up."""
    event = dial_event(form, call.step)
    new = store_and_apply(session, settings, read_call(session, call.id), event, now=now)
    status = event.status
    if status == "canceled" or form.get("CallStatus") == "completed":
        # The caller hung up: there is nobody left to speak to.
        return None
    if status in DIAL_ANSWERED:
        # The staff side ended an answered conversation (the <Dial action> request came with
        # the caller's leg still in progress): the line's survey, if it has one.
        if read_call(session, call.id).outcome != "answered" or call.line_id is None:
            return None
        line = cache.get(session.connection(), now).lines.get(call.to_number)
        if line is not None and line.id == call.line_id and line.survey:
            return calls.Answer("survey")
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
