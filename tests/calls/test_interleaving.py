"""Another worker's event stored between this request's reading and its writing.

A status callback reads the call and its events and decides the outcome before it takes any
write lock; under the lock it checks that nothing changed meanwhile and otherwise decides
again. These tests put the other worker's event exactly in that gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from callcenter.calls import outcomes
from callcenter.db import transaction
from callcenter.runtime import Runtime
from tests.calls.conftest import (
    ANDRIS,
    DEPARTMENT,
    LIGA,
    Clock,
    Twilio,
    load_call,
    requests_of,
    sid,
)
from tests.conftest import TEST_DATABASE_URL

pytestmark = [
    pytest.mark.usefixtures("staffed"),
    # On SQLite a webhook's write transaction begins IMMEDIATE (db.write_transaction): no
    # other writer can commit in the gap between its read and its write, so there is no gap
    # to test. PostgreSQL reads without blocking writers, and the gap is real there.
    pytest.mark.postgres,
    pytest.mark.skipif(
        not TEST_DATABASE_URL,
        reason="needs TEST_DATABASE_URL (PostgreSQL): SQLite's webhook writes begin IMMEDIATE",
    ),
]

Phone = Callable[..., Twilio]
Meanwhile = Callable[[dict[str, Any]], None]


@pytest.fixture
def meanwhile(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, sessions: sessionmaker[Session]
) -> Iterator[Meanwhile]:
    """Store a form's event, in a transaction of its own, right after the next request reads."""
    stored: list[str] = []

    def arrange(form: dict[str, Any]) -> None:
        read = outcomes.events_of

        def read_then_another_arrives(session: Session, call_id: int) -> list[outcomes.EventRow]:
            events = read(session, call_id)
            monkeypatch.setattr(outcomes, "events_of", read)
            with transaction(sessions) as other:
                event = outcomes.status_event(form)
                stored.append(
                    outcomes.record_status(other, runtime.settings, event, now=runtime.now())
                )
            return events

        monkeypatch.setattr(outcomes, "events_of", read_then_another_arrives)

    yield arrange
    assert stored == ["applied"], "the other event was not stored in the gap"


def test_an_answer_stored_meanwhile_is_not_overwritten(
    phone: Phone, clock: Clock, session: Session, meanwhile: Meanwhile
) -> None:
    call = phone()
    call.start()
    clock.tick(10)
    meanwhile(call.leg_form(sid(), ANDRIS, "in-progress"))
    clock.tick(30)
    # Read alone, the caller's end says abandoned; with the answer it is an answered call.
    call.status(call.parent_form("completed", CallDuration="40"))
    row = load_call(session, call.call_sid)
    assert (row.outcome, row.status, row.ring_seconds) == ("answered", "completed", 10)
    assert row.ended_at is not None
    assert requests_of(session) == []


def test_a_miss_stored_meanwhile_completes_the_missed_plan(
    phone: Phone, clock: Clock, session: Session, meanwhile: Meanwhile
) -> None:
    # Neither leg's miss changes the call row alone, so only the events tell it changed.
    call = phone(line=DEPARTMENT)
    call.start()
    clock.tick(20)
    meanwhile(call.leg_form(sid(), ANDRIS, "no-answer"))
    clock.tick(20)
    call.status(call.leg_form(sid(), LIGA, "no-answer"))
    assert load_call(session, call.call_sid).outcome == "no-answer"
    assert [(r.reason, r.status) for r in requests_of(session)] == [("missed", "open")]
