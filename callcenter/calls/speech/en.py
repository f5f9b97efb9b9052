"""The English texts callers hear (en-GB, en-US)."""

from __future__ import annotations

from datetime import date, datetime, time

from callcenter.calendar.hours import DayPlan
from callcenter.calls.speech.base import Away, Closed, HoursChanged, Texts, join, last_day

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
NUMBERS = (
    "", "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine", "ten", "eleven", "twelve",
)  # fmt: skip

PROMPTS = {
    "nobody_available": "Unfortunately none of our colleagues can take your call right now.",
    "technical_trouble": "Sorry, we are having technical problems. We are trying to connect you.",
    "technical_no_fallback": (
        "Sorry, we are having technical problems. Please call again a little later."
    ),
    "offer_callback": (
        "If you would like us to call you back on the number you are calling from, press 1. "
        "To give another phone number, press 2."
    ),
    "offer_callback_withheld": (
        "Your phone number is not shown. To ask for a call back, press 2 "
        "and enter your phone number."
    ),
    "enter_number": "Please enter your phone number, then press the hash key.",
    "bad_number": "Sorry, we could not understand that number.",
    "goodbye": "Thank you for calling. Goodbye!",
    "survey_question": (
        "Please rate our service by pressing a key from 1 to 5, "
        "where 1 means very poor and 5 means very good."
    ),
    "survey_thanks": "Thank you for your rating. Goodbye!",
}


def clock(value: time) -> str:
    if value == time.max:
        return "midnight"
    return f"{value.hour}:{value.minute:02d}"


def day_name(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]}"


def months(count: int) -> str:
    word = NUMBERS[count] if count < len(NUMBERS) else str(count)
    return f"{word} {'month' if count == 1 else 'months'}"


def day_hours(plan: DayPlan) -> str:
    return " and ".join(f"from {clock(o)} to {clock(c)}" for o, c in plan.intervals)


class English(Texts):
    language_family = "en"
    prompts = PROMPTS

    def notice(self, count: int) -> str:
        return (
            "Hello. Please note that this call will be recorded to ensure the quality of "
            f"customer service. Recordings are kept for {months(count)}."
        )

    def closed(self, message: Closed) -> str:
        today = message.today
        parts = ["Our customer service is closed at the moment."]
        if today.holiday_name:
            parts.append("Today is a public holiday in Latvia.")
        elif today.intervals:
            parts.append(f"Today we are open {day_hours(today)}.")
        if message.opens_at is not None and message.opens_plan is not None:
            opens = message.opens_at.date()
            when = "today" if opens == today.day else f"on {day_name(opens)}"
            parts.append(f"We open again {when}, {day_hours(message.opens_plan)}.")
        return " ".join(parts)

    def hours_changed(self, message: HoursChanged) -> str | None:
        change = message.change
        when = "Today" if change.day == message.today else f"On {day_name(change.day)}"
        if change.interval:
            opens, closes = change.interval
            return f"{when} we are open from {clock(opens)} to {clock(closes)} only."
        return f"{when} we are closed."

    def away(self, message: Away) -> str:
        day, at = last_day(message.until)
        until = (
            f"until {day_name(day)}, {clock(at)}" if at else f"until and including {day_name(day)}"
        )
        who = (
            f"{message.for_name} is away"
            if message.for_name
            else "Everyone in this department is away"
        )
        taker = join(message.substitutes, "or") or "a colleague"
        return f"{who} {until}. Your call will be taken by {taker}."

    def callback_confirmed(self, due: datetime) -> str:
        return (
            "Thank you. Your request for a call back has been received. "
            f"We will call you back by {day_name(due.date())}, {clock(due.time())}."
        )
