"""Place a simulated call through the real webhooks, signed exactly as Twilio signs them.

It plays all of Twilio's part: posts the voice webhook, reads the TwiML, speaks the <Say>s,
follows <Dial> (each leg's status callbacks, the callee's whisper, then the dial's outcome),
<Gather> (pressing the given keys) and the callback URLs, sends the call's own status callback
when it ends and, with `record`, the recording-status callback of an answered recorded dial;
and returns the conversation as lines of text. So `calls list`, `report` and ingestion show a
simulated day as a real one. A newcomer sees the whole path with it, and the black-box tests
drive the running service with it.
"""

from __future__ import annotations

import email.utils
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from twilio.request_validator import RequestValidator

from callcenter.settings import Settings

# How long a simulated conversation lasts, in seconds.
TALK_SECONDS = 42
# The number's StatusCallback, as `callcenter twilio configure` sets it.
STATUS_PATH = "/twilio/voice/status"


def _timestamp() -> str:
    return email.utils.format_datetime(datetime.now(UTC))


# Bounds the conversation: a misbehaving service cannot keep the simulator looping.
MAX_WEBHOOKS = 20


class SimulationError(RuntimeError):
    """The service answered something Twilio could not have used."""


@dataclass
class Simulation:
    settings: Settings
    base_url: str
    from_number: str
    to_number: str
    # One per dial, in order: answered, no-answer, busy, failed; answered when they run out.
    dial_outcomes: list[str] = field(default_factory=list)
    # Keys the caller presses at each menu, in order; nothing when they run out.
    presses: list[str] = field(default_factory=list)
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    transcript: list[str] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)
    webhooks: int = 0
    # Send the recording-status callback of an answered recorded dial.
    record: bool = False
    # Called with (RecordingSid, CallSid, seconds) before that callback: where the media is
    # made available (a fake of Twilio's API in tests).
    on_recording: Callable[[str, str, int], None] | None = None
    # Whether the caller hangs up after a conversation (else the staff side does, and the
    # caller stays for what follows: a survey).
    caller_hangs_up: bool = False
    sequence: int = 0
    recordings: list[str] = field(default_factory=list)

    def _send(self, url: str, form: dict[str, str]) -> requests.Response:
        public = self.settings.require("PUBLIC_BASE_URL").rstrip("/")
        if not url.startswith(public):
            raise SimulationError(f"callback URL {url} is not under PUBLIC_BASE_URL")
        validator = RequestValidator(self.settings.require("TWILIO_AUTH_TOKEN"))
        signature = validator.compute_signature(url, form)
        target = self.base_url.rstrip("/") + url[len(public) :]
        return self.http.post(
            target, data=form, headers={"X-Twilio-Signature": signature}, timeout=15
        )

    def _notify(self, url: str | None, form: dict[str, str]) -> None:
        """A status or recording callback: Twilio expects no TwiML, we expect 204."""
        if not url:
            return
        response = self._send(url, {**form, "Timestamp": _timestamp()})
        if response.status_code not in (200, 204):
            raise SimulationError(f"{url} answered {response.status_code}: {response.text[:200]}")

    def _leg_status(self, number: ET.Element, leg_sid: str, status: str, **extra: str) -> None:
        self.sequence += 1
        form = {
            "CallSid": leg_sid,
            "ParentCallSid": self.call_sid,
            "AccountSid": self.settings.require("TWILIO_ACCOUNT_SID"),
            "From": self.from_number,
            "To": number.text or "",
            "CallStatus": status,
            "Direction": "outbound-dial",
            "ApiVersion": "2010-04-01",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(self.sequence),
            **extra,
        }
        self._notify(number.get("statusCallback"), form)

    def _post(self, url: str, form: dict[str, str]) -> ET.Element:
        self.webhooks += 1
        if self.webhooks > MAX_WEBHOOKS:
            raise SimulationError("too many webhooks for one call")
        response = self._send(url, form)
        if response.status_code != 200:
            raise SimulationError(f"{url} answered {response.status_code}: {response.text[:200]}")
        try:
            root = ET.fromstring(response.content)  # noqa: S314 - our own service's TwiML
        except ET.ParseError as exc:
            raise SimulationError(f"{url} answered something that is not TwiML: {exc}") from None
        if root.tag != "Response":
            raise SimulationError(f"{url} answered <{root.tag}>, not <Response>")
        return root

    def _base_form(self) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.settings.require("TWILIO_ACCOUNT_SID"),
            "From": self.from_number,
            "To": self.to_number,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }

    def say(self, line: str) -> None:
        self.transcript.append(line)

    def run(self) -> list[str]:
        """Place the call and return the conversation."""
        self.say(f"call {self.call_sid}: caller {self.from_number} dials {self.to_number}")
        form = {**self._base_form(), "CallStatus": "ringing"}
        root = self._post(self.settings.url_for("/twilio/voice"), form)
        self._follow(root)
        # The number's StatusCallback hears that the call ended.
        ended = {**self._base_form(), "CallStatus": "completed", "CallDuration": "60"}
        self._notify(self.settings.url_for(STATUS_PATH), ended)
        return self.transcript

    def _follow(self, root: ET.Element) -> None:
        for verb in root:
            if verb.tag == "Say":
                self.say(f"caller hears [{verb.get('language', '?')}]: {verb.text or ''}")
            elif verb.tag == "Play":
                self.say(f"caller hears audio {verb.text}")
            elif verb.tag == "Pause":
                continue
            elif verb.tag == "Hangup":
                self.say("call ends")
                return
            elif verb.tag == "Dial":
                if self._dial(verb):
                    return
            elif verb.tag == "Gather":
                if self._gather(verb):
                    return
            else:
                raise SimulationError(f"unexpected verb <{verb.tag}>")
        self.say("call ends (no more TwiML)")

    def _dial(self, dial: ET.Element) -> bool:
        numbers = [n for n in dial if n.tag == "Number"]
        self.say(
            "dialling "
            + ", ".join(n.text or "?" for n in numbers)
            + (f" (recording: {dial.get('record')})" if dial.get("record") else " (not recorded)")
        )
        legs = {id(number): "CA" + uuid.uuid4().hex for number in numbers}
        for number in numbers:
            self._leg_status(number, legs[id(number)], "ringing")
        outcome = self.dial_outcomes.pop(0) if self.dial_outcomes else "answered"
        answered: ET.Element | None = None
        ended: set[int] = set()
        if outcome == "answered":
            for number in numbers:
                self._leg_status(number, legs[id(number)], "in-progress")
                if number.get("url") and not self._whisper(number, legs[id(number)]):
                    # Picked up, never accepted: the leg hangs up after the whisper.
                    self._leg_status(number, legs[id(number)], "completed", CallDuration="5")
                    ended.add(id(number))
                    continue
                answered = number
                break
            if answered is None:
                outcome = "no-answer"
        for number in numbers:
            if number is answered:
                talk = str(TALK_SECONDS)
                self._leg_status(number, legs[id(number)], "completed", CallDuration=talk)
            elif id(number) not in ended:
                # The others of a simultaneous dial are hung up when one answers.
                final = "canceled" if answered is not None else outcome
                self._leg_status(number, legs[id(number)], final)
        if answered is not None:
            self.say(f"{answered.text} answers; the caller is connected")
            if dial.get("record"):
                self._recording(dial)
            self.say("the caller hangs up" if self.caller_hangs_up else f"{answered.text} hangs up")
        else:
            self.say(f"nobody answers ({outcome})")
        action = dial.get("action")
        if not action:
            return False
        caller_gone = answered is not None and self.caller_hangs_up
        form = {
            **self._base_form(),
            "CallStatus": "completed" if caller_gone else "in-progress",
            "DialCallStatus": "completed" if answered is not None else outcome,
            "DialCallDuration": str(TALK_SECONDS) if answered is not None else "0",
        }
        if answered is not None:
            form["DialCallSid"] = legs[id(answered)]
            form["DialBridged"] = "true"
        self._follow(self._post(action, form))
        return True

    def _recording(self, dial: ET.Element) -> None:
        """The recording-status callback Twilio sends once a recorded conversation ends."""
        if not self.record:
            return
        recording_sid = "RE" + uuid.uuid4().hex
        if self.on_recording is not None:
            self.on_recording(recording_sid, self.call_sid, TALK_SECONDS)
        account = self.settings.require("TWILIO_ACCOUNT_SID")
        base = self.settings.twilio_api_base_url.rstrip("/")
        form = {
            "AccountSid": account,
            "CallSid": self.call_sid,
            "RecordingSid": recording_sid,
            "RecordingUrl": f"{base}/2010-04-01/Accounts/{account}/Recordings/{recording_sid}",
            "RecordingStatus": "completed",
            "RecordingDuration": str(TALK_SECONDS),
            "RecordingChannels": "2",
            "RecordingStartTime": _timestamp(),
            "RecordingSource": "DialVerb",
        }
        self._notify(dial.get("recordingStatusCallback"), form)
        self.recordings.append(recording_sid)
        self.say(f"recording {recording_sid} reported")

    def _whisper(self, number: ET.Element, leg_sid: str) -> bool:
        url = number.get("url") or ""
        leg = {
            "CallSid": leg_sid,
            "ParentCallSid": self.call_sid,
            "AccountSid": self.settings.require("TWILIO_ACCOUNT_SID"),
            "From": self.from_number,
            "To": number.text or "",
            "CallStatus": "in-progress",
            "Direction": "outbound-dial",
        }
        root = self._post(url, leg)
        for verb in _walk(root):
            if verb.tag == "Say":
                self.say(f"{number.text} hears [{verb.get('language', '?')}]: {verb.text}")
        gather = root.find("Gather")
        if gather is None:
            return True
        self.say(f"{number.text} presses 1")
        accepted = self._post(gather.get("action") or url, {**leg, "Digits": "1"})
        return accepted.find("Hangup") is None

    def _gather(self, gather: ET.Element) -> bool:
        for verb in gather:
            if verb.tag == "Say":
                self.say(f"caller hears [{verb.get('language', '?')}]: {verb.text or ''}")
        if not self.presses:
            self.say("caller presses nothing")
            return False
        digits = self.presses.pop(0)
        self.say(f"caller presses {digits}")
        form = {**self._base_form(), "CallStatus": "in-progress", "Digits": digits}
        self._follow(self._post(gather.get("action") or "", form))
        return True


def _walk(root: ET.Element) -> Iterator[ET.Element]:
    for child in root:
        yield child
        yield from _walk(child)
