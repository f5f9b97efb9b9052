"""A batch of status events applied at once (outcomes.STATUS_WRITES) ends where the same events
applied one by one end: the same results, calls, events and callback requests.

On PostgreSQL a batch locks all its calls, then inserts all its events and reads their calls'
events in one statement each; on SQLite it runs them one by one. Both are checked here against
`record_status` one event at a time, in one transaction that is then rolled back.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.calls import outcomes
from callcenter.calls.models import Call, CallbackRequest, CallEvent
from callcenter.db import is_postgres, transaction
from callcenter.runtime import Runtime
from tests.calls.conftest import ANDRIS, DIRECT, OTHER_CALLER, Clock, Twilio, sid

pytestmark = pytest.mark.usefixtures("staffed")

Phone = Callable[..., Twilio]


def state(session: Session) -> dict[str, Any]:
    """What the events made of the log, without ids (a rolled-back insert keeps its id)."""
    session.expire_all()
    sids = {call.id: call.call_sid for call in session.scalars(select(Call))}
    calls = sorted(
        (c.call_sid, c.to_number, c.status, c.outcome, c.ended_at, c.answered_by_id,
         c.as_substitute, c.answered_at, c.ring_seconds, c.talk_seconds)
        for c in session.scalars(select(Call))
    )  # fmt: skip
    events = sorted(
        (
            sids[e.call_id],
            e.dedupe_key,
            e.kind,
            e.leg_sid,
            e.status,
            e.received_at,
            json.dumps(e.payload, sort_keys=True),
        )
        for e in session.scalars(select(CallEvent))
    )
    requests = sorted(
        (sids.get(r.call_id or 0), r.phone, r.reason, r.status, r.note)
        for r in session.scalars(select(CallbackRequest))
    )
    return {"calls": calls, "events": events, "requests": requests}


Events = list[tuple[outcomes.Event, datetime]]


def batch(phone: Phone, clock: Clock) -> tuple[Events, dict[str, str]]:
    """The events of a busy moment, each with its own time (every case a batch meets), and
    the CallSids of the calls they are about, by name."""
    # Each its own caller: a caller has one open request a day, which a later miss reopens.
    answered, hung_up = phone(), phone(caller=OTHER_CALLER)
    missed = phone(caller="+37129444444", line=DIRECT)
    for call in (answered, missed, hung_up):
        call.start()
    leg, rung, early = sid(), sid(), sid()
    stored_before = answered.leg_form(leg, ANDRIS, "initiated")
    answered.status(stored_before)
    forms = [
        # New events of one call, and one it had already. One by one, the caller's hang-up
        # opens a callback request and the answer (which Twilio reports late) closes it.
        answered.leg_form(leg, ANDRIS, "ringing"),
        stored_before,
        # A payload of every kind of character a form can carry, stored as it came.
        {
            **answered.parent_form("completed", CallDuration="30"),
            "CallbackSource": 'Jānis "Bērziņš" \\ \u0000 \U0001f4de',
        },
        answered.leg_form(leg, ANDRIS, "in-progress", at=clock.now - timedelta(seconds=20)),
        # Two copies of one event in the same batch.
        *[missed.leg_form(rung, ANDRIS, "no-answer")] * 2,
        # The caller's own leg ends before anyone answered: a callback request is opened.
        hung_up.leg_form(early, ANDRIS, "ringing"),
        hung_up.parent_form("completed", CallDuration="12"),
        # A call the log does not have (answered by the fallback while the database was out).
        {**missed.parent_form("completed"), "CallSid": sid(), "From": "+37129333333"},
    ]
    events = []
    for form in forms:
        events.append((outcomes.status_event({k: v for k, v in form.items() if v}), clock.now))
        clock.tick(0.25)
    names = {"answered": answered, "missed": missed, "hung up": hung_up}
    return events, {name: call.call_sid for name, call in names.items()}


def test_a_batch_ends_where_one_by_one_ends(
    phone: Phone,
    clock: Clock,
    runtime: Runtime,
    sessions: sessionmaker[Session],
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events, sids = batch(phone, clock)
    settings = runtime.settings
    with sessions() as alone:
        alone.begin()
        expected = [outcomes.record_status(alone, settings, e, now=now) for e, now in events]
        wanted = state(alone)
        alone.rollback()
    assert expected.count("duplicate") == 2 and "applied" in expected

    one_by_one: list[str] = []
    record = outcomes.record_status

    def counted(*args: Any, **kwargs: Any) -> str:
        one_by_one.append(args[2].dedupe_key)
        return record(*args, **kwargs)

    monkeypatch.setattr(outcomes, "record_status", counted)
    with transaction(sessions) as together:
        writes = [(settings, event, now) for event, now in events]
        got = outcomes.STATUS_WRITES.run(together, writes)
        postgres = is_postgres(together)
    assert got == expected
    assert state(session) == wanted
    if postgres:
        # Only the call the log lacked went the way of one event at a time.
        assert one_by_one == [events[-1][0].dedupe_key]
    else:
        assert len(one_by_one) == len(events)
    statuses = {request[0]: request[3] for request in wanted["requests"]}
    assert [statuses[sids[name]] for name in ("answered", "hung up", "missed")] == [
        "done", "open", "open",
    ], statuses  # fmt: skip
    assert any(call[3] == "answered" for call in wanted["calls"])


def test_a_batch_that_fails_is_rolled_back_whole(
    phone: Phone, clock: Clock, runtime: Runtime, sessions: sessionmaker[Session],
    session: Session,
) -> None:  # fmt: skip
    events, _sids = batch(phone, clock)
    before = state(session)
    # An event without its kind: the database refuses the batch (the column is NOT NULL).
    bad = dataclasses.replace(events[0][0], kind=None, dedupe_key="status:bad")  # type: ignore[arg-type]
    writes = [(runtime.settings, e, now) for e, now in [*events[:3], (bad, clock.now)]]
    with pytest.raises(IntegrityError), transaction(sessions) as together:
        outcomes.STATUS_WRITES.run(together, writes)
    assert state(session) == before
