"""What callers and staff hear, in Latvian. Pure functions of their inputs."""

from __future__ import annotations

from datetime import datetime, time

from callcenter.calendar.hours import DayPlan, WorkingHours

WEEKDAYS = ("pirmdien", "otrdien", "trešdien", "ceturtdien", "piektdien", "sestdien", "svētdien")
MONTHS_LOCATIVE = (
    "janvārī", "februārī", "martā", "aprīlī", "maijā", "jūnijā",
    "jūlijā", "augustā", "septembrī", "oktobrī", "novembrī", "decembrī",
)  # fmt: skip

CLOSED_NOW = "Šobrīd klientu apkalpošanas dienests nestrādā."
NOBODY_AVAILABLE = "Diemžēl šobrīd neviens no kolēģiem nevar atbildēt uz jūsu zvanu."
TECHNICAL_TROUBLE = "Atvainojiet, radušies tehniski traucējumi. Mēģinām jūs savienot."
TECHNICAL_NO_FALLBACK = (
    "Atvainojiet, radušies tehniski traucējumi. Lūdzu, piezvaniet vēlreiz mazliet vēlāk."
)
OFFER_CALLBACK = (
    "Ja vēlaties, lai mēs jums atzvanām uz numuru, no kura zvanāt, nospiediet 1. "
    "Lai norādītu citu tālruņa numuru, nospiediet 2."
)
OFFER_CALLBACK_WITHHELD = (
    "Jūsu tālruņa numurs nav redzams. Lai pieteiktu atzvanīšanu, nospiediet 2 "
    "un ievadiet savu tālruņa numuru."
)
ENTER_NUMBER = "Lūdzu, ievadiet savu tālruņa numuru un nospiediet restīti."
BAD_NUMBER = "Diemžēl šo numuru nevarējām saprast."
GOODBYE = "Paldies par zvanu. Uz redzēšanos!"
WHISPER_DECLINED = "Zvans netika pieņemts."
# Whose call it is, when that cannot be looked up.
WHISPER_UNKNOWN = "klientu apkalpošanas dienests"


def clock(value: time) -> str:
    """Say a time of day the Latvian way: 8.00, 15.30."""
    if value == time.max:
        return "24.00"
    return f"{value.hour}.{value.minute:02d}"


def spoken_date(moment: datetime) -> str:
    return f"{WEEKDAYS[moment.weekday()]}, {moment.day}. {MONTHS_LOCATIVE[moment.month - 1]}"


def day_hours(plan: DayPlan) -> str:
    return ", ".join(f"no {clock(o)} līdz {clock(c)}" for o, c in plan.intervals)


def after_hours_message(hours: WorkingHours, now: datetime) -> str:
    """Say that the line is closed, today's hours or why not, and when it opens next."""
    local = hours.local(now)
    today = hours.day(local.date())
    parts = [CLOSED_NOW]
    if today.message:
        parts.append(today.message)
    if today.holiday_name:
        parts.append(f"Šodien ir svētku diena: {today.holiday_name}.")
    elif today.intervals:
        parts.append(f"Šodien strādājam {day_hours(today)}.")
    following = hours.next_opening(now)
    if following is not None:
        opens_at, plan = following
        opens_local = opens_at.astimezone(hours.timezone)
        when = "šodien" if opens_local.date() == local.date() else spoken_date(opens_local)
        parts.append(f"Atkal strādāsim {when}, {day_hours(plan)}.")
        if plan.message and plan.day != local.date():
            parts.append(plan.message)
    return " ".join(parts)


def changes_announcement(hours: WorkingHours, now: datetime) -> list[str]:
    """Announce changed hours of the coming days (the standard asks callers be told)."""
    local_today = hours.local(now).date()
    result = []
    for change in hours.upcoming_changes(now):
        if change.day == local_today:
            result.append(change.message or "")
            continue
        when = f"{WEEKDAYS[change.day.weekday()]}, {change.day.day}. "
        when += MONTHS_LOCATIVE[change.day.month - 1]
        if change.interval:
            opens, closes = change.interval
            result.append(
                f"{when.capitalize()} strādāsim no {clock(opens)} līdz {clock(closes)}. "
                f"{change.message or ''}".strip()
            )
        else:
            result.append(f"{when.capitalize()} nestrādāsim. {change.message or ''}".strip())
    return [text for text in result if text]


def whisper(for_name: str) -> str:
    """Tell a substitute whose call this is, and how to take it."""
    # The name stays in the nominative after a colon: Latvian names cannot be declined
    # reliably by rule, and a wrongly declined name sounds worse than none.
    return (
        f"Zvans, kurā jūs aizvietojat kolēģi. Zvanītājs vēlas runāt ar: {for_name}. "
        "Lai pieņemtu zvanu, nospiediet 1."
    )


def callback_confirmed(due: datetime) -> str:
    return (
        "Paldies! Jūsu atzvanīšanas pieprasījums ir pieņemts. "
        f"Mēs jums atzvanīsim līdz {spoken_date(due)}, plkst. {clock(due.time())}."
    )
