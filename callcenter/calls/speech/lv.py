"""Every Latvian text callers and staff hear, in one place. Pure functions of their inputs.

Grammar kept here, for a native speaker to review in one file:
- a day is said in the locative ("otrdien, 24. novembrī"), and after "līdz" in the dative
  ("līdz ceturtdienai, 3. decembrim");
- the caller is addressed with the polite plural ("Jūs esat sazvanījuši"), which needs no
  guess at their gender;
- names from the directory stay in the nominative, as the subject of their sentence or after
  a colon: Latvian names cannot be declined reliably by rule.
"""

from __future__ import annotations

from datetime import date, datetime, time

from callcenter.calendar.hours import DayPlan
from callcenter.calls.speech.base import Away, Closed, HoursChanged, Texts, join, last_day

WEEKDAYS = ("pirmdien", "otrdien", "trešdien", "ceturtdien", "piektdien", "sestdien", "svētdien")
WEEKDAYS_DATIVE = (
    "pirmdienai", "otrdienai", "trešdienai", "ceturtdienai",
    "piektdienai", "sestdienai", "svētdienai",
)  # fmt: skip
MONTHS_LOCATIVE = (
    "janvārī", "februārī", "martā", "aprīlī", "maijā", "jūnijā",
    "jūlijā", "augustā", "septembrī", "oktobrī", "novembrī", "decembrī",
)  # fmt: skip
MONTHS_DATIVE = (
    "janvārim", "februārim", "martam", "aprīlim", "maijam", "jūnijam",
    "jūlijam", "augustam", "septembrim", "oktobrim", "novembrim", "decembrim",
)  # fmt: skip
# Accusative ("glabāti trīs mēnešus"), as words up to twelve.
NUMBERS_ACCUSATIVE = (
    "", "vienu", "divus", "trīs", "četrus", "piecus", "sešus",
    "septiņus", "astoņus", "deviņus", "desmit", "vienpadsmit", "divpadsmit",
)  # fmt: skip

CLOSED_NOW = "Šobrīd klientu apkalpošanas dienests nestrādā."
WHISPER_DECLINED = "Zvans netika pieņemts."
# Whose call it is, when that cannot be looked up.
WHISPER_UNKNOWN = "klientu apkalpošanas dienests"
A_COLLEAGUE = "kolēģis"

PROMPTS = {
    "nobody_available": "Diemžēl šobrīd neviens no kolēģiem nevar atbildēt uz jūsu zvanu.",
    "technical_trouble": "Atvainojiet, radušies tehniski traucējumi. Mēģinām jūs savienot.",
    "technical_no_fallback": (
        "Atvainojiet, radušies tehniski traucējumi. Lūdzu, piezvaniet vēlreiz mazliet vēlāk."
    ),
    "offer_callback": (
        "Ja vēlaties, lai mēs jums atzvanām uz numuru, no kura zvanāt, nospiediet 1. "
        "Lai norādītu citu tālruņa numuru, nospiediet 2."
    ),
    "offer_callback_withheld": (
        "Jūsu tālruņa numurs nav redzams. Lai pieteiktu atzvanīšanu, nospiediet 2 "
        "un ievadiet savu tālruņa numuru."
    ),
    "enter_number": "Lūdzu, ievadiet savu tālruņa numuru un nospiediet restīti.",
    "bad_number": "Diemžēl šo numuru nevarējām saprast.",
    "goodbye": "Paldies par zvanu. Uz redzēšanos!",
    "survey_question": (
        "Lūdzu, novērtējiet mūsu apkalpošanu, nospiežot ciparu no 1 līdz 5, "
        "kur 1 nozīmē ļoti slikti un 5 nozīmē ļoti labi."
    ),
    "survey_thanks": "Paldies par jūsu vērtējumu! Uz redzēšanos!",
}


def clock(value: time) -> str:
    """Say a time of day the Latvian way: 8.00, 15.30."""
    if value == time.max:
        return "24.00"
    return f"{value.hour}.{value.minute:02d}"


def on_day(day: date) -> str:
    """The locative, for "on": otrdien, 24. novembrī."""
    return f"{WEEKDAYS[day.weekday()]}, {day.day}. {MONTHS_LOCATIVE[day.month - 1]}"


def until_day(day: date) -> str:
    """The dative, after "līdz": ceturtdienai, 3. decembrim."""
    return f"{WEEKDAYS_DATIVE[day.weekday()]}, {day.day}. {MONTHS_DATIVE[day.month - 1]}"


def spoken_date(moment: datetime | date) -> str:
    return on_day(moment.date() if isinstance(moment, datetime) else moment)


def months(count: int) -> str:
    """An accusative period: vienu mēnesi, trīs mēnešus, 21 mēnesi."""
    word = NUMBERS_ACCUSATIVE[count] if count < len(NUMBERS_ACCUSATIVE) else str(count)
    singular = count % 10 == 1 and count % 100 != 11
    return f"{word} {'mēnesi' if singular else 'mēnešus'}"


def day_hours(plan: DayPlan) -> str:
    return ", ".join(f"no {clock(o)} līdz {clock(c)}" for o, c in plan.intervals)


def whisper(for_name: str) -> str:
    """Tell a substitute whose call this is, and how to take it (staff hear Latvian)."""
    return (
        f"Zvans, kurā jūs aizvietojat kolēģi. Zvanītājs vēlas runāt ar: {for_name}. "
        "Lai pieņemtu zvanu, nospiediet 1."
    )


class Latvian(Texts):
    language_family = "lv"
    prompts = PROMPTS

    def notice(self, count: int) -> str:
        # Lawful notice text: who records, why, and for how long.
        return (
            "Labdien! Jūs esat sazvanījuši klientu apkalpošanas dienestu. "
            "Lūdzam ņemt vērā, ka saruna tiks ierakstīta klientu apkalpošanas kvalitātes "
            f"nodrošināšanai. Ieraksti tiek glabāti {months(count)}."
        )

    def closed(self, message: Closed) -> str:
        today = message.today
        parts = [CLOSED_NOW]
        if today.reason == "change" and today.message:
            # The operator's own words about today say it; the hours are not said again.
            parts.append(today.message)
        elif today.holiday_name:
            parts.append(f"Šodien ir svētku diena: {today.holiday_name}.")
        elif today.intervals:
            parts.append(f"Šodien strādājam {day_hours(today)}.")
        if message.opens_at is not None and message.opens_plan is not None:
            opens = message.opens_at.date()
            when = "šodien" if opens == today.day else on_day(opens)
            parts.append(f"Atkal strādāsim {when}, {day_hours(message.opens_plan)}.")
        return " ".join(parts)

    def hours_changed(self, message: HoursChanged) -> str | None:
        change = message.change
        if change.message:
            # One thing, once: the operator's message says the change in their words.
            return change.message
        today = change.day == message.today
        if change.interval:
            opens, closes = change.interval
            if today:
                return f"Šodien strādājam no {clock(opens)} līdz {clock(closes)}."
            return (
                f"{on_day(change.day).capitalize()} strādāsim no {clock(opens)} "
                f"līdz {clock(closes)}."
            )
        return "Šodien nestrādājam." if today else f"{on_day(change.day).capitalize()} nestrādāsim."

    def away(self, message: Away) -> str:
        day, at = last_day(message.until)
        until = f"līdz {until_day(day)}, " + (f"plkst. {clock(at)}" if at else "ieskaitot")
        who = (
            f"{message.for_name} ir prombūtnē"
            if message.for_name
            else "Visi šīs nodaļas darbinieki ir prombūtnē"
        )
        taker = join(message.substitutes, "vai") or A_COLLEAGUE
        return f"{who} {until}. Jūsu zvanu pieņems {taker}."

    def callback_confirmed(self, due: datetime) -> str:
        return (
            "Paldies! Jūsu atzvanīšanas pieprasījums ir pieņemts. "
            f"Mēs jums atzvanīsim līdz {until_day(due.date())}, plkst. {clock(due.time())}."
        )
