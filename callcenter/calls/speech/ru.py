"""The Russian texts callers hear (ru-RU)."""

# Cyrillic letters that look Latin are what Russian is written in.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import date, datetime, time

from callcenter.calendar.hours import DayPlan
from callcenter.calls.speech.base import Away, Closed, HoursChanged, Texts, join, last_day

# "в понедельник" (on), "до понедельника" (until).
WEEKDAYS_ON = (
    "в понедельник", "во вторник", "в среду", "в четверг",
    "в пятницу", "в субботу", "в воскресенье",
)  # fmt: skip
WEEKDAYS_GENITIVE = (
    "понедельника", "вторника", "среды", "четверга", "пятницы", "субботы", "воскресенья",
)  # fmt: skip
MONTHS_GENITIVE = (
    "января", "февраля", "марта", "апреля", "мая", "июня",
    "июля", "августа", "сентября", "октября", "ноября", "декабря",
)  # fmt: skip
NUMBERS = (
    "", "один", "два", "три", "четыре", "пять", "шесть",
    "семь", "восемь", "девять", "десять", "одиннадцать", "двенадцать",
)  # fmt: skip

PROMPTS = {
    "nobody_available": (
        "К сожалению, сейчас никто из наших сотрудников не может ответить на ваш звонок."
    ),
    "technical_trouble": "Извините, возникли технические неполадки. Пытаемся вас соединить.",
    "technical_no_fallback": (
        "Извините, возникли технические неполадки. Пожалуйста, перезвоните чуть позже."
    ),
    "offer_callback": (
        "Если вы хотите, чтобы мы перезвонили вам на номер, с которого вы звоните, нажмите 1. "
        "Чтобы указать другой номер телефона, нажмите 2."
    ),
    "offer_callback_withheld": (
        "Ваш номер телефона не определён. Чтобы заказать обратный звонок, нажмите 2 "
        "и введите свой номер телефона."
    ),
    "enter_number": "Пожалуйста, введите свой номер телефона и нажмите решётку.",
    "bad_number": "К сожалению, мы не смогли распознать этот номер.",
    "goodbye": "Спасибо за звонок. До свидания!",
    "survey_question": (
        "Пожалуйста, оцените наше обслуживание, нажав цифру от 1 до 5, "
        "где 1 означает очень плохо, а 5 означает очень хорошо."
    ),
    "survey_thanks": "Спасибо за вашу оценку! До свидания!",
}


def clock(value: time) -> str:
    if value == time.max:
        return "24:00"
    return f"{value.hour}:{value.minute:02d}"


def on_day(day: date) -> str:
    return f"{WEEKDAYS_ON[day.weekday()]}, {day.day} {MONTHS_GENITIVE[day.month - 1]}"


def until_day(day: date) -> str:
    return f"{WEEKDAYS_GENITIVE[day.weekday()]}, {day.day} {MONTHS_GENITIVE[day.month - 1]}"


def months(count: int) -> str:
    """Accusative: один месяц, три месяца, шесть месяцев, 21 месяц."""
    word = NUMBERS[count] if count < len(NUMBERS) else str(count)
    if count % 10 == 1 and count % 100 != 11:
        noun = "месяц"
    elif count % 10 in (2, 3, 4) and count % 100 not in (12, 13, 14):
        noun = "месяца"
    else:
        noun = "месяцев"
    return f"{word} {noun}"


def day_hours(plan: DayPlan) -> str:
    return " и ".join(f"с {clock(o)} до {clock(c)}" for o, c in plan.intervals)


class Russian(Texts):
    language_family = "ru"
    prompts = PROMPTS

    def notice(self, count: int) -> str:
        return (
            "Здравствуйте. Обращаем ваше внимание, что разговор будет записан для обеспечения "
            f"качества обслуживания клиентов. Записи хранятся {months(count)}."
        )

    def closed(self, message: Closed) -> str:
        today = message.today
        parts = ["Сейчас служба обслуживания клиентов не работает."]
        if today.holiday_name:
            parts.append("Сегодня в Латвии праздничный день.")
        elif today.intervals:
            parts.append(f"Сегодня мы работаем {day_hours(today)}.")
        if message.opens_at is not None and message.opens_plan is not None:
            opens = message.opens_at.date()
            when = "сегодня" if opens == today.day else on_day(opens)
            parts.append(f"Мы снова работаем {when}, {day_hours(message.opens_plan)}.")
        return " ".join(parts)

    def hours_changed(self, message: HoursChanged) -> str | None:
        change = message.change
        when = "Сегодня" if change.day == message.today else on_day(change.day).capitalize()
        if change.interval:
            opens, closes = change.interval
            return f"{when} мы работаем только с {clock(opens)} до {clock(closes)}."
        return f"{when} мы не работаем."

    def away(self, message: Away) -> str:
        day, at = last_day(message.until)
        until = f"до {until_day(day)}, {clock(at)}" if at else f"до {until_day(day)} включительно"
        who = (
            f"{message.for_name} отсутствует"
            if message.for_name
            else "Все сотрудники этого отдела отсутствуют"
        )
        taker = join(message.substitutes, "или") or "коллега"
        return f"{who} {until}. На ваш звонок ответит {taker}."

    def callback_confirmed(self, due: datetime) -> str:
        return (
            "Спасибо! Ваша заявка на обратный звонок принята. "
            f"Мы перезвоним вам до {until_day(due.date())}, {clock(due.time())}."
        )
