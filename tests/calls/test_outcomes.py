"""How calls end, as Twilio reports it: real callback sequences through the signed webhooks."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.calls import outcomes
from callcenter.calls.models import CallEvent
from callcenter.calls.outcomes import RANK, settle
from callcenter.db import is_postgres, utcnow
from tests.calls.conftest import (
    ANDRIS,
    CALLER,
    DEPARTMENT,
    DIRECT,
    LIGA,
    OFFICE,
    RIGA,
    Clock,
    Twilio,
    dialled,
    events_of,
    load_call,
    requests_of,
    sid,
)
from tests.conftest import TwilioPost, sign

pytestmark = pytest.mark.usefixtures("staffed")

Phone = Callable[..., Twilio]
# Two working days after Monday 2 March 2026 10:00: Wednesday at the company's closing time.
DUE = datetime(2026, 3, 4, 17, 0, tzinfo=RIGA)


def answered_sequence(call: Twilio, clock: Clock, to: str = ANDRIS) -> list[dict]:
    """Every callback of a call answered after 12 s and talked for 95 s, in Twilio's order."""
    leg = sid()
    forms = [call.leg_form(leg, to, "initiated"), call.leg_form(leg, to, "ringing")]
    clock.tick(12)
    forms.append(call.leg_form(leg, to, "in-progress"))
    clock.tick(95)
    forms.append(call.leg_form(leg, to, "completed", CallDuration="95"))
    forms.append(call.dial_form("completed", leg, 95))
    forms.append(call.parent_form("completed", CallDuration="107"))
    return forms


def post_all(call: Twilio, forms: list[dict]) -> None:
    for form in forms:
        if "DialCallStatus" in form:
            call.dial(form)
        else:
            call.status(form)


def test_answered_call_records_who_ring_time_and_talk_time(
    phone: Phone, clock: Clock, session: Session
) -> None:
    call = phone()
    call.start()
    forms = answered_sequence(call, clock)
    post_all(call, forms[:2])
    assert load_call(session, call.call_sid).outcome == "in-progress"
    call.status(forms[2])
    row = load_call(session, call.call_sid)
    # Answered the moment the leg reports it, before the conversation ends.
    assert row.outcome == "answered"
    assert row.answered_by is not None and row.answered_by.key == "akalnins"
    assert row.ring_seconds == 12
    call.status(forms[3])
    assert [v.tag for v in call.dial(forms[4])] == ["Hangup"]
    call.status(forms[5])
    row = load_call(session, call.call_sid)
    assert (row.outcome, row.as_substitute, row.ring_seconds, row.talk_seconds) == (
        "answered",
        False,
        12,
        95,
    )
    assert row.status == "completed"
    assert row.ended_at is not None
    assert len(events_of(session, row)) == 6
    assert requests_of(session) == []


def test_no_answer_then_the_substitute_answers(
    phone: Phone, clock: Clock, session: Session
) -> None:
    call = phone(line=DEPARTMENT)
    assert dialled(call.start()) == [ANDRIS]
    first = sid()
    call.status(call.leg_form(first, ANDRIS, "ringing"))
    clock.tick(20)
    call.status(call.leg_form(first, ANDRIS, "no-answer"))
    second_dial = call.dial(call.dial_form("no-answer", first))
    # Jānis is away: Līga is rung as his substitute, with a whisper first.
    assert dialled(second_dial) == [LIGA]
    assert load_call(session, call.call_sid).outcome == "in-progress"
    second = sid()
    call.status(call.leg_form(second, LIGA, "ringing"))
    clock.tick(5)
    call.status(call.leg_form(second, LIGA, "in-progress"))
    # Her phone answered, but she has not accepted the whisper yet: not a conversation.
    assert load_call(session, call.call_sid).outcome == "in-progress"
    # She presses 1 in the whisper: stored, then her leg is bridged.
    assert [v.tag for v in call.accept(second, LIGA)] == []
    clock.tick(60)
    call.status(call.leg_form(second, LIGA, "completed", CallDuration="60"))
    assert [v.tag for v in call.dial(call.dial_form("completed", second, 54))] == ["Hangup"]
    call.status(call.parent_form("completed"))
    row = load_call(session, call.call_sid)
    assert row.outcome == "answered"
    assert row.answered_by is not None and row.answered_by.key == "lozola"
    assert row.as_substitute is True
    assert (row.ring_seconds, row.talk_seconds) == (25, 54)
    assert requests_of(session) == []


def test_caller_hanging_up_during_the_notice_is_abandoned_and_called_back(
    phone: Phone, clock: Clock, session: Session
) -> None:
    call = phone()
    call.start()
    clock.tick(4)
    call.status(call.parent_form("completed", CallDuration="4"))
    row = load_call(session, call.call_sid)
    assert row.outcome == "abandoned"
    assert row.answered_by_id is None
    [request] = requests_of(session)
    assert (request.phone, request.reason, request.status) == (CALLER, "abandoned", "open")
    assert request.call_id == row.id
    assert request.due_at == DUE


def test_caller_hanging_up_while_it_rings_is_abandoned(
    phone: Phone, clock: Clock, session: Session
) -> None:
    call = phone(line=DEPARTMENT)
    call.start()
    leg = sid()
    call.status(call.leg_form(leg, ANDRIS, "ringing"))
    clock.tick(6)
    call.status(call.leg_form(leg, ANDRIS, "canceled"))
    hang_up = call.dial(call.dial_form("canceled", leg, 0, call_status="completed"))
    assert [v.tag for v in hang_up] == ["Hangup"]
    call.status(call.parent_form("completed"))
    assert load_call(session, call.call_sid).outcome == "abandoned"
    assert [r.reason for r in requests_of(session)] == ["abandoned"]


@pytest.mark.parametrize("status", ["busy", "failed", "no-answer"])
def test_missed_call_offers_a_callback_and_opens_a_request(
    phone: Phone, clock: Clock, session: Session, status: str
) -> None:
    call = phone()
    call.start()
    leg = sid()
    call.status(call.leg_form(leg, ANDRIS, "initiated"))
    call.status(call.leg_form(leg, ANDRIS, status))
    offer = call.dial(call.dial_form(status, leg))
    # Nobody left to ring: the caller is offered a callback, never just hung up on.
    assert offer.find("Gather") is not None
    row = load_call(session, call.call_sid)
    assert row.outcome == status
    clock.tick(10)
    call.status(call.parent_form("completed"))
    row = load_call(session, call.call_sid)
    assert row.outcome == status
    [request] = requests_of(session)
    assert (request.reason, request.due_at, request.status) == ("missed", DUE, "open")


def test_pressing_1_after_a_miss_keeps_one_request_and_ends_as_callback_requested(
    phone: Phone, clock: Clock, session: Session, twilio_post: TwilioPost
) -> None:
    call = phone()
    call.start()
    call.dial(call.dial_form("no-answer", sid()))
    form = {**call.parent_form("in-progress"), "Digits": "1"}
    form.pop("Timestamp")
    assert twilio_post("/twilio/voice/callback-request", form).status_code == 200
    call.status(call.parent_form("completed"))
    assert load_call(session, call.call_sid).outcome == "callback-requested"
    [request] = requests_of(session)
    assert request.reason == "requested"


def test_withheld_caller_gets_no_automatic_request(phone: Phone, session: Session) -> None:
    call = phone(caller="anonymous")
    call.start()
    call.dial(call.dial_form("busy", sid()))
    call.status(call.parent_form("completed"))
    assert load_call(session, call.call_sid).outcome == "busy"
    assert requests_of(session) == []


def test_after_hours_call_left_without_a_key_press_gets_a_request(
    phone: Phone, clock: Clock, session: Session
) -> None:
    clock.set(datetime(2026, 3, 2, 19, 30, tzinfo=RIGA))
    call = phone(line=OFFICE)
    assert call.start().find("Dial") is None
    assert load_call(session, call.call_sid).outcome == "after-hours"
    # No request while the caller may still press 1 for one.
    assert requests_of(session) == []
    call.status(call.parent_form("completed"))
    row = load_call(session, call.call_sid)
    assert row.outcome == "after-hours"
    [request] = requests_of(session)
    assert request.reason == "after-hours"
    assert request.due_at == DUE


def test_duplicates_change_nothing(phone: Phone, clock: Clock, session: Session) -> None:
    call = phone(line=DEPARTMENT)
    call.start()
    leg = sid()
    ringing = call.leg_form(leg, ANDRIS, "ringing")
    no_answer = call.leg_form(leg, ANDRIS, "no-answer")
    for form in (ringing, ringing, no_answer, ringing, no_answer):
        call.status(form)
    dial = call.dial_form("no-answer", leg)
    first = call.dial(dial)
    # Twilio retried the dial's action: the same answer, and no step skipped.
    again = call.dial(dial)
    assert dialled(first) == dialled(again) == [LIGA]
    row = load_call(session, call.call_sid)
    assert row.step == 1
    call.status(call.parent_form("completed"))
    call.status(call.parent_form("completed"))
    row = load_call(session, call.call_sid)
    assert len(events_of(session, row)) == 4
    assert row.outcome == "abandoned"
    assert len(requests_of(session)) == 1


def test_events_in_reverse_order_give_the_same_outcome(
    phone: Phone, clock: Clock, session: Session
) -> None:
    call = phone()
    call.start()
    forms = answered_sequence(call, clock)
    forms.reverse()
    for form in forms:
        if "DialCallStatus" in form:
            call.dial(form)
        else:
            call.status(form)
    row = load_call(session, call.call_sid)
    assert (row.outcome, row.ring_seconds, row.talk_seconds, row.status) == (
        "answered",
        12,
        95,
        "completed",
    )
    assert row.answered_by is not None and row.answered_by.key == "akalnins"
    # The end came first and looked abandoned for a moment; its request is closed again.
    assert [r.status for r in requests_of(session)] == ["done"]


def test_shuffled_events_of_a_missed_call_end_missed(
    phone: Phone, clock: Clock, session: Session
) -> None:
    for seed in range(5):
        call = phone(caller=f"+3712933333{seed}")
        call.start()
        leg = sid()
        forms = [
            call.leg_form(leg, ANDRIS, "initiated"),
            call.leg_form(leg, ANDRIS, "ringing"),
            call.leg_form(leg, ANDRIS, "busy"),
            call.parent_form("completed"),
        ]
        random.Random(seed).shuffle(forms)
        post_all(call, forms)
        assert load_call(session, call.call_sid).outcome == "busy"
    assert {r.reason for r in requests_of(session)} == {"missed"}


def test_finished_outcomes_never_move_back() -> None:
    assert settle("answered", "abandoned") == "answered"
    assert settle("answered", "in-progress") == "answered"
    assert settle("callback-requested", "no-answer") == "callback-requested"
    assert settle("callback-requested", "answered") == "answered"
    assert settle("no-answer", "abandoned") == "no-answer"
    assert settle("abandoned", "busy") == "busy"
    assert settle("after-hours", "abandoned") == "after-hours"
    assert settle("in-progress", "abandoned") == "abandoned"
    assert max(RANK, key=RANK.__getitem__) == "answered"


# Refusals --------------------------------------------------------------------------------


def test_an_unknown_call_is_written_as_answered_by_the_fallback_and_logged_masked(
    phone: Phone, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    # The voice webhook never wrote this call (the database was out of reach): the caller got
    # the fallback. Its callbacks write it now, so the call log is complete.
    call = phone(line=DIRECT)
    caplog.set_level(logging.INFO)
    call.status(call.leg_form(sid(), ANDRIS, "ringing"))
    call.status(call.parent_form("completed", CallDuration="30"))
    row = load_call(session, call.call_sid)
    assert row.routing_note is not None and "fallback" in row.routing_note
    assert (row.from_number, row.to_number, row.status) == (CALLER, DIRECT, "completed")
    assert row.line_id is not None
    assert session.scalar(select(func.count()).select_from(CallEvent)) == 2
    assert "answered by the fallback" in caplog.text
    assert CALLER not in caplog.text and ANDRIS not in caplog.text


def test_signature_and_required_fields(
    phone: Phone, client: FlaskClient, twilio_post: TwilioPost
) -> None:
    call = phone()
    call.start()
    form = call.parent_form("completed")
    assert client.post("/twilio/voice/status", data=form).status_code == 403
    wrong = sign("http://calls.example.test/twilio/voice/status", form)
    assert twilio_post("/twilio/voice/status", form, signature=wrong).status_code == 403
    for name in ("CallSid", "CallStatus"):
        response = twilio_post("/twilio/voice/status", {**form, name: None})
        assert response.status_code == 400
        assert name in response.get_data(as_text=True)
    assert twilio_post("/twilio/voice/status", {**form, "CallSid": "CA" * 40}).status_code == 400


@pytest.mark.parametrize(
    "timestamp",
    ["not a date", "Mon, 99 Foo 2026 99:99:99 +0000", "9999-12-31T23:00:00-05:00"],
)
@pytest.mark.parametrize("route", ["/twilio/voice/status", "/twilio/voice/dial-complete"])
def test_a_timestamp_that_is_no_time_is_a_400_on_every_call_webhook(
    phone: Phone, twilio_post: TwilioPost, session: Session, timestamp: str, route: str
) -> None:
    call = phone()
    call.start()
    if route.endswith("dial-complete"):
        form = {**call.dial_form("completed", dial_sid=sid(), duration=10), "Timestamp": timestamp}
    else:
        form = {**call.leg_form(sid(), ANDRIS, "completed"), "Timestamp": timestamp}
    response = twilio_post(route, form)
    assert response.status_code == 400
    assert "Timestamp" in response.get_data(as_text=True)
    # Refused, not half-stored: the call has no event from it.
    assert load_call(session, call.call_sid).outcome == "in-progress"


@pytest.mark.parametrize(
    "extra",
    [
        {"CallDuration": "-5"},
        {"SequenceNumber": "x" * 500},
        {"CallStatus": "exploded"},
        {"ParentCallSid": "CA" + "f" * 32},
        {"To": "💥"},
    ],
)
def test_odd_input_never_gets_a_500(
    phone: Phone, twilio_post: TwilioPost, extra: dict, session: Session
) -> None:
    call = phone()
    call.start()
    form = {**call.leg_form(sid(), ANDRIS, "completed", CallDuration="10"), **extra}
    assert twilio_post("/twilio/voice/status", form).status_code == 204
    call.status(call.parent_form("completed"))
    assert load_call(session, call.call_sid).outcome in ("answered", "abandoned")


def test_the_one_statement_store_returns_what_separate_reads_return(
    phone: Phone, clock: Clock, session: Session
) -> None:
    """SQLite's status path finds, stores and reads in one statement: the same rows, typed alike."""
    if is_postgres(session):
        pytest.skip("store_for_call is SQLite's path (PostgreSQL locks the call, then a CTE)")
    call = phone()
    call.start()
    forms = answered_sequence(call, clock)
    post_all(call, forms[:3])
    row = outcomes.find_parent(session, forms[3])
    assert row is not None
    before = outcomes.events_of(session, row.id)
    assert len(before) == 3  # the leg's initiated, ringing, in-progress
    stored = outcomes.store_for_call(session, outcomes.status_event(forms[3]), utcnow())
    assert stored is not None
    found, events = stored
    # The parent's row (a child leg's event names its parent), as find_parent reads it.
    assert found == row == outcomes.read_call(session, row.id)
    assert found.answered_at is not None and found.answered_at.tzinfo is not None
    assert isinstance(found.as_substitute, bool)
    # The new event among them, every value as a fresh read gives it.
    assert events == outcomes.events_of(session, row.id)
    assert len(events) == len(before) + 1 and events[:-1] == before
    assert events[-1].dedupe_key == outcomes.status_event(forms[3]).dedupe_key
    assert all(e.received_at.tzinfo is not None for e in events)
    assert all(isinstance(e.payload, dict) and e.payload for e in events)
    # Stored already, or a call not in the log: nothing stored, nothing returned.
    assert outcomes.store_for_call(session, outcomes.status_event(forms[3]), utcnow()) is None
    unknown = {**forms[3], "ParentCallSid": sid(), "SequenceNumber": "9"}
    assert outcomes.store_for_call(session, outcomes.status_event(unknown), utcnow()) is None
    assert outcomes.events_of(session, row.id) == events
    session.rollback()
