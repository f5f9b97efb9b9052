"""Every caller form Twilio sends is logged (SIP and client callers too), on both databases.

On PostgreSQL a column narrower than what the webhook accepts raises instead of storing: the
caller heard the apology and the call was not logged. This runs against PostgreSQL whenever
TEST_DATABASE_URL is set (CI), where the column sizes are enforced.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from tests.calls.conftest import (
    ANDRIS,
    DIRECT,
    Twilio,
    dialled,
    events_of,
    load_call,
    requests_of,
    twiml,
)

pytestmark = pytest.mark.usefixtures("staffed")

CALLERS = [
    "sip:+37129111111@example.sip.twilio.com",
    "client:anna",
    "sip:" + "a" * 200 + "@example.sip.twilio.com",
]


@pytest.mark.parametrize("caller", CALLERS)
def test_sip_and_client_callers_are_routed_and_logged(
    phone: Callable[..., Twilio], session: Session, caller: str
) -> None:
    call = phone(caller=caller, line=DIRECT)
    root = call.start()
    assert dialled(root) == [ANDRIS]
    call.status(call.parent_form("completed", CallDuration="3"))
    row = load_call(session, call.call_sid)
    assert row.from_number == caller
    assert row.outcome == "abandoned"


@pytest.mark.parametrize("caller", CALLERS[:2])
def test_a_sip_caller_asking_to_be_called_back_is_asked_for_a_number(
    phone: Callable[..., Twilio], session: Session, caller: str
) -> None:
    call = phone(caller=caller, line=DIRECT)
    call.start()
    form = call.form(CallSid=call.call_sid, From=caller, To=DIRECT, Digits="1")
    root = twiml(call.post("/twilio/voice/callback-request", form))
    # A SIP or client address is no number to call back: the caller keys one in.
    assert root.find("Gather") is not None
    form = call.form(CallSid=call.call_sid, From=caller, To=DIRECT, Digits="29111111#")
    twiml(call.post("/twilio/voice/callback-request", form))
    assert [r.phone for r in requests_of(session)] == ["+37129111111"]


def test_an_event_keeps_only_the_fields_it_uses_bounded(
    phone: Callable[..., Twilio], session: Session
) -> None:
    call = phone()
    call.start()
    call.status(call.parent_form("completed", CallDuration="3", Padding="x" * 60_000))
    (event,) = events_of(session, load_call(session, call.call_sid))
    assert "Padding" not in event.payload
    assert event.payload["CallStatus"] == "completed" and event.payload["CallDuration"] == "3"
    assert len(str(event.payload)) < 2_000
