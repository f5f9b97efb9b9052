"""The named states of calls and callback requests; values are what the rows store."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How a call ended, as `calls list` reports it (`in-progress` while it lasts)."""

    IN_PROGRESS = "in-progress"
    ANSWERED = "answered"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"
    AFTER_HOURS = "after-hours"
    CALLBACK_REQUESTED = "callback-requested"


class CallbackStatus(StrEnum):
    OPEN = "open"
    DONE = "done"


class EventKind(StrEnum):
    """Which Twilio callback an event came from."""

    STATUS = "status"
    DIAL = "dial"
    # A substitute pressed 1 in the whisper: only then does their leg count as answered.
    ACCEPT = "accept"
