"""Callback requests from missed calls, the call log and the callback list on the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from tests.calls.conftest import (
    ANDRIS,
    CALLER,
    OTHER_CALLER,
    RIGA,
    Clock,
    Twilio,
    load_call,
    requests_of,
    sid,
)
from tests.cli import run

pytestmark = pytest.mark.usefixtures("staffed")

Phone = Callable[..., Twilio]


def missed(call: Twilio) -> None:
    call.start()
    leg = sid()
    call.status(call.leg_form(leg, ANDRIS, "no-answer"))
    call.dial(call.dial_form("no-answer", leg))
    call.status(call.parent_form("completed"))


def answered(call: Twilio, clock: Clock) -> None:
    call.start()
    leg = sid()
    clock.tick(8)
    call.status(call.leg_form(leg, ANDRIS, "in-progress"))
    clock.tick(30)
    call.status(call.leg_form(leg, ANDRIS, "completed", CallDuration="30"))
    call.dial(call.dial_form("completed", leg, 30))
    call.status(call.parent_form("completed"))


def test_one_request_per_caller_per_day_not_per_attempt(
    phone: Phone, clock: Clock, session: Session
) -> None:
    for _ in range(3):
        missed(phone())
        clock.tick(600)
    missed(phone(caller=OTHER_CALLER))
    assert sorted(r.phone for r in requests_of(session)) == [CALLER, OTHER_CALLER]
    # The next day is another day: the same caller gets a new request.
    clock.set(datetime(2026, 3, 3, 9, 0, tzinfo=RIGA))
    missed(phone())
    assert [r.phone for r in requests_of(session)].count(CALLER) == 2


def test_request_closes_when_a_later_call_from_the_caller_is_answered(
    phone: Phone, clock: Clock, session: Session
) -> None:
    missed(phone())
    [request] = requests_of(session)
    assert request.status == "open"
    clock.tick(3600)
    later = phone()
    answered(later, clock)
    [request] = requests_of(session)
    assert request.status == "done"
    assert request.note == f"answered on a later call {later.call_sid}"
    assert request.done_at is not None


def test_late_event_about_an_earlier_call_leaves_a_later_request_open(
    phone: Phone, clock: Clock, session: Session
) -> None:
    earlier = phone()
    earlier.start()
    leg = sid()
    clock.tick(3600)
    missed(phone())
    # The earlier call's answer is reported only now: it says nothing of the later miss.
    earlier.status(earlier.leg_form(leg, ANDRIS, "in-progress"))
    assert load_call(session, earlier.call_sid).outcome == "answered"
    assert [r.status for r in requests_of(session)] == ["open"]


def test_calls_list_gives_the_contract_fields(
    phone: Phone,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    answered(phone(), clock)
    clock.tick(3600)
    missed(phone(caller=OTHER_CALLER))
    result = run(capsys, monkeypatch, env, "calls", "list", "--json")
    assert result.code == 0, result.err
    rows = result.json()
    assert [row["outcome"] for row in rows] == ["answered", "no-answer"]
    first = rows[0]
    assert {"call_sid", "from", "to", "started_at", "outcome", "answered_by", "as_substitute"} <= (
        first.keys()
    )
    assert (first["from"], first["answered_by"], first["as_substitute"]) == (
        CALLER,
        "akalnins",
        False,
    )
    assert first["started_at"] == "2026-03-02T10:00:00+02:00"
    assert rows[1]["answered_by"] is None
    since = run(capsys, monkeypatch, env, "calls", "list", "--since", "2026-03-02T10:30", "--json")
    assert [row["from"] for row in since.json()] == [OTHER_CALLER]
    text = run(capsys, monkeypatch, env, "calls", "list")
    assert text.code == 0 and "akalnins" in text.out
    bad = run(capsys, monkeypatch, env, "calls", "list", "--since", "yesterday")
    assert bad.code != 0 and len(bad.err.strip().splitlines()) == 1


def test_callbacks_list_overdue_and_done(
    phone: Phone,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    missed(phone())
    result = run(capsys, monkeypatch, env, "callbacks", "list", "--json")
    [row] = result.json()
    assert {"id", "phone", "call_sid", "due_at", "status"} <= row.keys()
    assert (row["phone"], row["status"], row["due_at"]) == (
        CALLER,
        "open",
        "2026-03-04T17:00:00+02:00",
    )
    # March 2026 is in the past for the command's own clock: the request is overdue.
    overdue = run(capsys, monkeypatch, env, "callbacks", "list", "--overdue", "--json")
    assert [r["id"] for r in overdue.json()] == [row["id"]]
    done = run(capsys, monkeypatch, env, "callbacks", "done", str(row["id"]), "--note", "rang")
    assert done.code == 0, done.err
    assert run(capsys, monkeypatch, env, "callbacks", "list", "--json").json() == []
    again = run(capsys, monkeypatch, env, "callbacks", "done", str(row["id"]))
    assert again.code == 1 and "already done" in again.err
    missing = run(capsys, monkeypatch, env, "callbacks", "done", "999")
    assert missing.code == 1 and len(missing.err.strip().splitlines()) == 1


def test_done_request_reopens_when_the_caller_misses_again_that_day(
    phone: Phone, clock: Clock, session: Session
) -> None:
    missed(phone())
    answered(phone(), clock)
    assert [r.status for r in requests_of(session)] == ["done"]
    clock.tick(timedelta(hours=1).total_seconds())
    missed(phone())
    assert [r.status for r in requests_of(session)] == ["open"]
