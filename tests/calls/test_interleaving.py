"""Another worker's event of the same call arriving while this request applies its own.

A status callback locks the call's row, stores its event and reads all the call's events (one
statement on PostgreSQL) and decides the outcome from them. An event of the same call arriving
meanwhile waits for that lock and decides from both; nothing decided from a stale read is
written.
These tests start the other worker's event exactly while this request holds the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
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
    OTHER_CALLER,
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
Meanwhile = Callable[[dict[str, Any]], Callable[[], None]]


@pytest.fixture
def meanwhile(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, sessions: sessionmaker[Session]
) -> Iterator[Meanwhile]:
    """Send a form's event from another thread right after the next request has read the call.

    Returns `settle()`, which waits for that event and checks it was applied after it waited.
    """
    stored: list[str] = []
    threads: list[threading.Thread] = []

    def other_worker(form: dict[str, Any]) -> None:
        with transaction(sessions) as other:
            event = outcomes.status_event(form)
            stored.append(outcomes.record_status(other, runtime.settings, event, now=runtime.now()))

    def arrange(form: dict[str, Any]) -> Callable[[], None]:
        read = outcomes.store_and_read

        def read_then_another_arrives(
            session: Session, call_id: int, event: outcomes.Event, now: datetime
        ) -> list[outcomes.EventRow] | None:
            events = read(session, call_id, event, now)
            monkeypatch.setattr(outcomes, "store_and_read", read)
            thread = threading.Thread(target=other_worker, args=(form,))
            thread.start()
            threads.append(thread)
            thread.join(0.5)
            # It waits for this request's row lock: it has stored nothing yet.
            assert thread.is_alive() and stored == []
            return events

        monkeypatch.setattr(outcomes, "store_and_read", read_then_another_arrives)

        def settle() -> None:
            for thread in threads:
                thread.join(10)
            assert stored == ["applied"], "the other event was not applied after it waited"

        return settle

    yield arrange
    assert threads, "no request read the call"


def test_an_answer_stored_meanwhile_is_not_overwritten(
    phone: Phone, clock: Clock, session: Session, meanwhile: Meanwhile
) -> None:
    call = phone()
    call.start()
    clock.tick(10)
    settle = meanwhile(call.leg_form(sid(), ANDRIS, "in-progress"))
    clock.tick(30)
    # Read alone, the caller's end says abandoned; with the answer it is an answered call.
    call.status(call.parent_form("completed", CallDuration="40"))
    settle()
    row = load_call(session, call.call_sid)
    assert (row.outcome, row.status, row.ring_seconds) == ("answered", "completed", 10)
    assert row.ended_at is not None
    # Applied first, the caller's end alone asked for a callback; the answer that waited
    # closed it, as it would have arriving a moment later: nobody is left to call back.
    assert [(r.status, r.note) for r in requests_of(session)] == [
        ("done", f"answered on this call {call.call_sid}")
    ]


def test_a_miss_stored_meanwhile_completes_the_missed_plan(
    phone: Phone, clock: Clock, session: Session, meanwhile: Meanwhile
) -> None:
    # Neither leg's miss changes the call row alone, so only the events tell it changed.
    call = phone(line=DEPARTMENT)
    call.start()
    clock.tick(20)
    settle = meanwhile(call.leg_form(sid(), ANDRIS, "no-answer"))
    clock.tick(20)
    call.status(call.leg_form(sid(), LIGA, "no-answer"))
    settle()
    assert load_call(session, call.call_sid).outcome == "no-answer"
    assert [(r.reason, r.status) for r in requests_of(session)] == [("missed", "open")]


def test_a_batch_that_waits_for_a_call_decides_from_what_was_committed_meanwhile(
    phone: Phone,
    clock: Clock,
    runtime: Runtime,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    # A batch of status events (outcomes.STATUS_WRITES) locks all its calls first, then reads
    # their events in a statement of its own: what another worker committed while the batch
    # waited for a lock is in that read.
    call, elsewhere = phone(), phone(caller=OTHER_CALLER)
    call.start()
    elsewhere.start()
    clock.tick(10)
    answer = event_of(call.leg_form(sid(), ANDRIS, "in-progress"))
    clock.tick(30)
    batch = [
        (runtime.settings, event_of(call.parent_form("completed", CallDuration="40")), clock.now),
        (runtime.settings, event_of(elsewhere.leg_form(sid(), ANDRIS, "ringing")), clock.now),
    ]
    results: list[str] = []

    def run_batch() -> None:
        with transaction(sessions) as other:
            results.extend(outcomes.STATUS_WRITES.run(other, batch))

    with transaction(sessions) as first:
        assert outcomes.record_status(first, runtime.settings, answer, now=clock.now) == "applied"
        thread = threading.Thread(target=run_batch)
        thread.start()
        thread.join(0.5)
        # It waits for this transaction's row lock on the call.
        assert thread.is_alive() and results == []
    thread.join(10)
    assert results == ["applied", "applied"]
    row = load_call(session, call.call_sid)
    assert (row.outcome, row.status, row.ring_seconds) == ("answered", "completed", 10)
    # Decided from both events, the caller's end never asked for a callback.
    assert requests_of(session) == []


def event_of(form: dict[str, Any]) -> outcomes.Event:
    return outcomes.status_event({name: value for name, value in form.items() if value})
