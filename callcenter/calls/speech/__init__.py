"""What callers and staff hear: messages as data, rendered in each language the line speaks.

Latvian texts are all in `lv`, English in `en`, Russian in `ru`. A caller hears every
caller-facing message in each of the line's languages, Latvian first (`spoken`); staff (the
whisper) hear Latvian. Pure functions of their inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from callcenter.calendar.hours import WorkingHours
from callcenter.calls.speech import en, lv, ru
from callcenter.calls.speech.base import (
    BAD_NUMBER,
    ENTER_NUMBER,
    GOODBYE,
    NOBODY_AVAILABLE,
    OFFER_CALLBACK,
    OFFER_CALLBACK_WITHHELD,
    PROMPTS,
    SURVEY_QUESTION,
    SURVEY_THANKS,
    TECHNICAL_NO_FALLBACK,
    TECHNICAL_TROUBLE,
    Away,
    CallbackConfirmed,
    Closed,
    HoursChanged,
    Message,
    Notice,
    Prompt,
    Texts,
)

__all__ = [
    "BAD_NUMBER",
    "ENTER_NUMBER",
    "GOODBYE",
    "NOBODY_AVAILABLE",
    "OFFER_CALLBACK",
    "OFFER_CALLBACK_WITHHELD",
    "PROMPTS",
    "SURVEY_QUESTION",
    "SURVEY_THANKS",
    "TECHNICAL_NO_FALLBACK",
    "TECHNICAL_TROUBLE",
    "WHISPER_DECLINED",
    "WHISPER_UNKNOWN",
    "Away",
    "CallbackConfirmed",
    "Closed",
    "HoursChanged",
    "Message",
    "Notice",
    "Prompt",
    "Texts",
    "after_hours",
    "changes_announcement",
    "spoken",
    "texts_for",
    "whisper",
]

LATVIAN = lv.Latvian()
TEXTS: dict[str, Texts] = {
    "lv-LV": LATVIAN,
    "en-GB": en.English(),
    "en-US": en.English(),
    "ru-RU": ru.Russian(),
}
WHISPER_DECLINED = lv.WHISPER_DECLINED
WHISPER_UNKNOWN = lv.WHISPER_UNKNOWN
whisper = lv.whisper

Utterance = tuple[str, str]


def texts_for(language: str) -> Texts | None:
    """The texts of a language, or None when the service has none (only a custom notice)."""
    return TEXTS.get(language)


def spoken(messages: Iterable[Message], languages: Sequence[str]) -> tuple[Utterance, ...]:
    """Each message in each language that has texts, Latvian first: (language, text) pairs."""
    ordered = ["lv-LV", *(code for code in languages if code != "lv-LV")]
    result = []
    for message in messages:
        for language in ordered:
            texts = texts_for(language)
            text = texts.render(message) if texts is not None else None
            if text:
                result.append((language, text))
    return tuple(result)


def after_hours(hours: WorkingHours, now: datetime) -> Closed:
    """The line is closed: today's plan, and when it opens next (local times)."""
    local = hours.local(now)
    following = hours.next_opening(now)
    if following is None:
        return Closed(hours.day(local.date()), None, None)
    opens_at, plan = following
    return Closed(hours.day(local.date()), opens_at.astimezone(hours.timezone), plan)


def changes_announcement(hours: WorkingHours, now: datetime) -> tuple[HoursChanged, ...]:
    """Announce one-off changes of the coming week (the standard asks callers be told).

    A line open `always` is closed by no change, so it announces none.
    """
    if hours.weekly.always:
        return ()
    today = hours.local(now).date()
    return tuple(HoursChanged(today, change) for change in hours.upcoming_changes(now))
