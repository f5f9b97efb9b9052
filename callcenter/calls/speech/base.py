"""What a caller hears, as data, and the shape every language's texts take.

A message names what is to be said (the line is closed, someone is away, a callback is booked)
with the facts it needs; each language renders it. The domain decides messages; the TwiML
builders speak them in every language the line speaks, Latvian first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime, time

from callcenter.calendar.hours import Change, DayPlan


@dataclass(frozen=True)
class Prompt:
    """A fixed text, named by key (every language has each one)."""

    key: str


NOBODY_AVAILABLE = Prompt("nobody_available")
TECHNICAL_TROUBLE = Prompt("technical_trouble")
TECHNICAL_NO_FALLBACK = Prompt("technical_no_fallback")
OFFER_CALLBACK = Prompt("offer_callback")
OFFER_CALLBACK_WITHHELD = Prompt("offer_callback_withheld")
ENTER_NUMBER = Prompt("enter_number")
BAD_NUMBER = Prompt("bad_number")
GOODBYE = Prompt("goodbye")
SURVEY_QUESTION = Prompt("survey_question")
SURVEY_THANKS = Prompt("survey_thanks")
PROMPTS = (
    NOBODY_AVAILABLE,
    TECHNICAL_TROUBLE,
    TECHNICAL_NO_FALLBACK,
    OFFER_CALLBACK,
    OFFER_CALLBACK_WITHHELD,
    ENTER_NUMBER,
    BAD_NUMBER,
    GOODBYE,
    SURVEY_QUESTION,
    SURVEY_THANKS,
)


@dataclass(frozen=True)
class Notice:
    """The recording notice, naming how long recordings are kept."""

    months: int


@dataclass(frozen=True)
class Closed:
    """The line is closed now: today's hours or why not, and when it opens next (local)."""

    today: DayPlan
    opens_at: datetime | None
    opens_plan: DayPlan | None


@dataclass(frozen=True)
class HoursChanged:
    """A one-off change of the hours in the coming days (announced on an open line)."""

    today: date
    change: Change


@dataclass(frozen=True)
class Away:
    """The person called (None: everyone of the group called) is away until a local time;
    one of `substitutes` takes the call (none named: "a colleague")."""

    for_name: str | None
    until: datetime
    substitutes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallbackConfirmed:
    """A callback request is booked; we call back by `due` (local)."""

    due: datetime


Message = Prompt | Notice | Closed | HoursChanged | Away | CallbackConfirmed


def last_day(until: datetime) -> tuple[date, time | None]:
    """Return the day an absence lasts to and its time; None when it lasts the whole day.

    An absence ending at local midnight covers the day before it entirely ("until and
    including Sunday"); one ending at another time ends on its own day at that time.
    """
    if until.time().replace(tzinfo=None) == time(0, 0):
        return date.fromordinal(until.date().toordinal() - 1), None
    return until.date(), until.time().replace(tzinfo=None)


def join(names: tuple[str, ...], word: str) -> str:
    """Join names as alternatives: "A", "A or B", "A, B or C"."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {word} {names[-1]}"


class Texts(ABC):
    """Every text a caller hears, in one language."""

    language_family: str
    prompts: dict[str, str]

    def render(self, message: Message) -> str | None:
        """Say a message in this language; None when there is nothing to say."""
        if isinstance(message, Prompt):
            return self.prompts[message.key]
        if isinstance(message, Notice):
            return self.notice(message.months)
        if isinstance(message, Closed):
            return self.closed(message)
        if isinstance(message, HoursChanged):
            return self.hours_changed(message)
        if isinstance(message, Away):
            return self.away(message)
        return self.callback_confirmed(message.due)

    @abstractmethod
    def notice(self, months: int) -> str: ...

    @abstractmethod
    def closed(self, message: Closed) -> str: ...

    @abstractmethod
    def hours_changed(self, message: HoursChanged) -> str | None: ...

    @abstractmethod
    def away(self, message: Away) -> str: ...

    @abstractmethod
    def callback_confirmed(self, due: datetime) -> str: ...
