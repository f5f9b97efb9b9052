"""Call-outcome fixtures: a directory, a clock, and a Twilio that posts a call's callbacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from callcenter.calls.models import Call, CallbackRequest, CallEvent
from callcenter.directory import service as directory
from callcenter.runtime import Runtime
from tests.conftest import ACCOUNT_SID, RIGA, TwilioPost
from tests.sids import new_sid as sid

# The direct line rings one person; the department line rings a sequential group whose second
# member is away, so their substitute is rung second; the office line keeps office hours.
DIRECT = "+37167000002"
DEPARTMENT = "+37167000001"
OFFICE = "+37167000003"
CALLER = "+37129111111"
OTHER_CALLER = "+37129222222"
JANIS = "+37120000001"
LIGA = "+37120000002"
ANDRIS = "+37120000003"
# Monday 2 March 2026, 10:00 in Riga: a working day with two more before any holiday.
MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=RIGA)


@pytest.fixture
def staffed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone=JANIS)
        directory.add_staff(session, "lozola", name="Līga Ozola", phone=LIGA)
        directory.add_staff(session, "akalnins", name="Andris Kalniņš", phone=ANDRIS)
        directory.add_group(
            session,
            "abonenti",
            name="Abonenti",
            members=["akalnins", "jberzins"],
            strategy="sequential",
        )
        directory.add_line(session, DIRECT, target="staff:akalnins", hours="always")
        directory.add_line(session, DEPARTMENT, target="group:abonenti", hours="always")
        directory.add_line(session, OFFICE, target="staff:akalnins", hours="mon-fri 08:00-17:00")
        directory.add_absence(
            session,
            "jberzins",
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
            ends_at=datetime(2027, 1, 1, tzinfo=UTC),
            substitute_key="lozola",
        )


@dataclass
class Clock:
    runtime: Runtime
    now: datetime

    def set(self, moment: datetime) -> None:
        self.now = moment.astimezone(UTC)

    def tick(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock(runtime, MONDAY.astimezone(UTC))
    runtime.clock = lambda: clock.now
    return clock


def twiml(response: TestResponse) -> ET.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    return ET.fromstring(response.get_data())


def dialled(root: ET.Element) -> list[str]:
    return [n.text or "" for n in root.iter("Number")]


@dataclass
class Twilio:
    """Plays Twilio's part for one call: the voice webhook, then the callbacks, signed."""

    post: TwilioPost
    clock: Clock
    call_sid: str
    caller: str = CALLER
    line: str = DIRECT
    sequence: int = 0

    def form(self, **fields: Any) -> dict[str, Any]:
        return {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            **fields,
        }

    def start(self) -> ET.Element:
        form = self.form(
            CallSid=self.call_sid,
            From=self.caller,
            To=self.line,
            CallStatus="ringing",
            Direction="inbound",
        )
        return twiml(self.post("/twilio/voice", form))

    def leg_form(
        self, leg: str, to: str, status: str, *, at: datetime | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A <Number statusCallback> event of a child leg; each event its own SequenceNumber."""
        form = self.form(
            CallSid=leg,
            ParentCallSid=self.call_sid,
            From=self.caller,
            To=to,
            CallStatus=status,
            Direction="outbound-dial",
            CallbackSource="call-progress-events",
            SequenceNumber=str(self.sequence),
            Timestamp=format_datetime(at or self.clock.now),
            **extra,
        )
        self.sequence += 1
        return form

    def parent_form(self, status: str, **extra: Any) -> dict[str, Any]:
        return self.form(
            CallSid=self.call_sid,
            From=self.caller,
            To=self.line,
            CallStatus=status,
            Direction="inbound",
            Timestamp=format_datetime(self.clock.now),
            **extra,
        )

    def dial_form(
        self,
        status: str,
        dial_sid: str | None = None,
        duration: int | None = None,
        call_status: str = "in-progress",
    ) -> dict[str, Any]:
        return self.form(
            CallSid=self.call_sid,
            From=self.caller,
            To=self.line,
            CallStatus=call_status,
            DialCallStatus=status,
            DialCallSid=dial_sid,
            DialCallDuration=None if duration is None else str(duration),
        )

    def status(self, form: dict[str, Any]) -> TestResponse:
        response = self.post("/twilio/voice/status", form)
        assert response.status_code == 204, response.get_data(as_text=True)
        return response

    def accept(self, leg: str, to: str) -> ET.Element:
        """The substitute on leg `leg` presses 1 in the whisper."""
        form = self.form(
            CallSid=leg,
            ParentCallSid=self.call_sid,
            From=self.caller,
            To=to,
            CallStatus="in-progress",
            Direction="outbound-dial",
            Digits="1",
        )
        return twiml(self.post("/twilio/voice/whisper", form))

    def dial(self, form: dict[str, Any]) -> ET.Element:
        return twiml(self.post("/twilio/voice/dial-complete", form))


@pytest.fixture
def phone(twilio_post: TwilioPost, clock: Clock) -> Callable[..., Twilio]:
    def make(call_sid: str | None = None, *, caller: str = CALLER, line: str = DIRECT) -> Twilio:
        return Twilio(twilio_post, clock, call_sid or sid(), caller, line)

    return make


def load_call(session: Session, call_sid: str) -> Call:
    session.expire_all()
    return session.scalars(select(Call).where(Call.call_sid == call_sid)).one()


def events_of(session: Session, call: Call) -> list[CallEvent]:
    return list(session.scalars(select(CallEvent).where(CallEvent.call_id == call.id)))


def requests_of(session: Session) -> list[CallbackRequest]:
    session.expire_all()
    return list(session.scalars(select(CallbackRequest).order_by(CallbackRequest.id)))
