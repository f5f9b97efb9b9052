"""Place a simulated call through the real webhooks, signed exactly as Twilio signs them.

It plays Twilio's part: posts the voice webhook, reads the TwiML, speaks the <Say>s, follows
<Dial> (the callee's whisper, then the dial's outcome), <Gather> (pressing the given keys) and
the callback URLs, and returns the conversation as lines of text. A newcomer sees the whole
path with it, and the black-box tests drive the running service with it.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests
from twilio.request_validator import RequestValidator

from callcenter.settings import Settings

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

    def _post(self, url: str, form: dict[str, str]) -> ET.Element:
        public = self.settings.require("PUBLIC_BASE_URL").rstrip("/")
        if not url.startswith(public):
            raise SimulationError(f"callback URL {url} is not under PUBLIC_BASE_URL")
        self.webhooks += 1
        if self.webhooks > MAX_WEBHOOKS:
            raise SimulationError("too many webhooks for one call")
        validator = RequestValidator(self.settings.require("TWILIO_AUTH_TOKEN"))
        signature = validator.compute_signature(url, form)
        target = self.base_url.rstrip("/") + url[len(public) :]
        response = self.http.post(
            target, data=form, headers={"X-Twilio-Signature": signature}, timeout=15
        )
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
        self.say(f"caller {self.from_number} dials {self.to_number}")
        form = {**self._base_form(), "CallStatus": "ringing"}
        root = self._post(self.settings.url_for("/twilio/voice"), form)
        self._follow(root)
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
            + (f" (recording: {dial.get('record')})" if dial.get("record") else "")
        )
        outcome = self.dial_outcomes.pop(0) if self.dial_outcomes else "answered"
        answered_by = None
        if outcome == "answered":
            for number in numbers:
                if number.get("url") and not self._whisper(number):
                    continue
                answered_by = number.text
                break
            if answered_by is None:
                outcome = "no-answer"
        if answered_by:
            self.say(f"{answered_by} answers; the caller is connected")
        else:
            self.say(f"nobody answers ({outcome})")
        action = dial.get("action")
        if not action:
            return False
        form = {
            **self._base_form(),
            "CallStatus": "in-progress" if outcome != "answered" else "completed",
            "DialCallStatus": "completed" if outcome == "answered" else outcome,
            "DialCallSid": "CA" + uuid.uuid4().hex,
            "DialCallDuration": "42" if outcome == "answered" else "0",
        }
        self._follow(self._post(action, form))
        return True

    def _whisper(self, number: ET.Element) -> bool:
        url = number.get("url") or ""
        leg = {
            "CallSid": "CA" + uuid.uuid4().hex,
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
