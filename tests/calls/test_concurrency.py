"""Copies of the same callback arriving at the same moment, from threads with their own clients.

SQLite serialises writers, so the race is proven on PostgreSQL (TEST_DATABASE_URL); the same
scenarios also run on SQLite as a check that its busy handling loses nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.calls.models import CallbackRequest, CallEvent
from tests.calls.conftest import ANDRIS, OTHER_CALLER, Clock, Twilio, load_call, requests_of, sid
from tests.conftest import PUBLIC_BASE_URL, TEST_DATABASE_URL, sign

pytestmark = pytest.mark.usefixtures("staffed")

Phone = Callable[..., Twilio]
THREADS = 12


def post_at_once(app: Flask, requests: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """Post each (path, form) from its own thread and client, all released together."""
    barrier = threading.Barrier(len(requests))

    def one(item: tuple[str, dict[str, Any]]) -> int:
        path, form = item
        form = {k: v for k, v in form.items() if v is not None}
        signature = sign(PUBLIC_BASE_URL + path, form)
        client = app.test_client()
        barrier.wait()
        response = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        return response.status_code

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


def count(session: Session, model: type) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def same_event_at_once(app: Flask, phone: Phone, session: Session) -> None:
    call = phone()
    call.start()
    event = call.leg_form(sid(), ANDRIS, "in-progress")
    codes = post_at_once(app, [("/twilio/voice/status", event)] * THREADS)
    assert codes == [204] * THREADS
    assert count(session, CallEvent) == 1
    row = load_call(session, call.call_sid)
    assert row.outcome == "answered"
    assert row.answered_by is not None and row.answered_by.key == "akalnins"


def whole_call_at_once(app: Flask, phone: Phone, clock: Clock, session: Session) -> None:
    call = phone()
    call.start()
    leg = sid()
    forms = [call.leg_form(leg, ANDRIS, "ringing")]
    clock.tick(7)
    forms.append(call.leg_form(leg, ANDRIS, "in-progress"))
    clock.tick(40)
    forms += [
        call.leg_form(leg, ANDRIS, "completed", CallDuration="40"),
        call.parent_form("completed", CallDuration="47"),
    ]
    requests = [("/twilio/voice/status", form) for form in forms] * 3
    requests.append(("/twilio/voice/dial-complete", call.dial_form("completed", leg, 40)))
    codes = post_at_once(app, requests)
    assert set(codes) <= {200, 204}
    assert count(session, CallEvent) == 5
    row = load_call(session, call.call_sid)
    assert (row.outcome, row.ring_seconds, row.talk_seconds, row.status) == (
        "answered",
        7,
        40,
        "completed",
    )
    assert [r for r in requests_of(session) if r.status == "open"] == []


def one_request_for_many_misses_at_once(app: Flask, phone: Phone, session: Session) -> None:
    calls = [phone(caller=OTHER_CALLER) for _ in range(THREADS // 2)]
    for call in calls:
        call.start()
    requests = []
    for call in calls:
        requests += [("/twilio/voice/status", call.parent_form("completed"))] * 2
    assert set(post_at_once(app, requests)) == {204}
    assert count(session, CallbackRequest) == 1
    assert {load_call(session, c.call_sid).outcome for c in calls} == {"abandoned"}


@pytest.mark.parametrize(
    "scenario", [same_event_at_once, whole_call_at_once, one_request_for_many_misses_at_once]
)
@pytest.mark.postgres
@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL (PostgreSQL)")
def test_concurrent_copies_on_postgres(
    app: Flask, phone: Phone, clock: Clock, session: Session, scenario: Callable[..., None]
) -> None:
    _run(scenario, app, phone, clock, session)


@pytest.mark.parametrize(
    "scenario", [same_event_at_once, whole_call_at_once, one_request_for_many_misses_at_once]
)
@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="the PostgreSQL variant runs instead")
def test_concurrent_copies_on_sqlite(
    app: Flask, phone: Phone, clock: Clock, session: Session, scenario: Callable[..., None]
) -> None:
    _run(scenario, app, phone, clock, session)


def _run(
    scenario: Callable[..., None], app: Flask, phone: Phone, clock: Clock, session: Session
) -> None:
    if scenario is whole_call_at_once:
        scenario(app, phone, clock, session)
    else:
        scenario(app, phone, session)
