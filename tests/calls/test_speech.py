"""The texts callers hear: Latvian dates and periods, English and Russian beside them."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from callcenter.calls import speech
from callcenter.calls.speech import en, lv, ru
from tests.conftest import RIGA

# Monday 30 November 2026 to Sunday 6 December 2026.
WEEK = [date(2026, 11, 30 + n) if n < 1 else date(2026, 12, n) for n in range(7)]


@pytest.mark.parametrize(
    ("day", "on", "until"),
    [
        (WEEK[0], "pirmdien, 30. novembrī", "pirmdienai, 30. novembrim"),
        (WEEK[1], "otrdien, 1. decembrī", "otrdienai, 1. decembrim"),
        (WEEK[2], "trešdien, 2. decembrī", "trešdienai, 2. decembrim"),
        (WEEK[3], "ceturtdien, 3. decembrī", "ceturtdienai, 3. decembrim"),
        (WEEK[4], "piektdien, 4. decembrī", "piektdienai, 4. decembrim"),
        (WEEK[5], "sestdien, 5. decembrī", "sestdienai, 5. decembrim"),
        (WEEK[6], "svētdien, 6. decembrī", "svētdienai, 6. decembrim"),
    ],
)
def test_latvian_weekdays_in_the_locative_and_after_lidz_in_the_dative(
    day: date, on: str, until: str
) -> None:
    assert lv.on_day(day) == on
    assert lv.until_day(day) == until


@pytest.mark.parametrize(
    ("month", "on", "until"),
    [
        (1, "janvārī", "janvārim"),
        (2, "februārī", "februārim"),
        (3, "martā", "martam"),
        (4, "aprīlī", "aprīlim"),
        (5, "maijā", "maijam"),
        (6, "jūnijā", "jūnijam"),
        (7, "jūlijā", "jūlijam"),
        (8, "augustā", "augustam"),
        (9, "septembrī", "septembrim"),
        (10, "oktobrī", "oktobrim"),
        (11, "novembrī", "novembrim"),
        (12, "decembrī", "decembrim"),
    ],
)
def test_latvian_months_in_the_locative_and_the_dative(month: int, on: str, until: str) -> None:
    day = date(2027, month, 15)
    assert lv.on_day(day).endswith(f", 15. {on}")
    assert lv.until_day(day).endswith(f", 15. {until}")


def test_the_callback_confirmation_says_by_when_with_the_dative() -> None:
    due = datetime(2026, 12, 3, 17, 0, tzinfo=RIGA)
    assert (
        lv.Latvian()
        .callback_confirmed(due)
        .endswith("Mēs jums atzvanīsim līdz ceturtdienai, 3. decembrim, plkst. 17.00.")
    )
    assert en.English().callback_confirmed(due).endswith("by Thursday 3 December, 17:00.")
    assert ru.Russian().callback_confirmed(due).endswith("до четверга, 3 декабря, 17:00.")


@pytest.mark.parametrize(
    ("count", "latvian", "russian"),
    [
        (1, "vienu mēnesi", "один месяц"),
        (2, "divus mēnešus", "два месяца"),
        (5, "piecus mēnešus", "пять месяцев"),
        (11, "vienpadsmit mēnešus", "одиннадцать месяцев"),
        (12, "divpadsmit mēnešus", "двенадцать месяцев"),
        (13, "13 mēnešus", "13 месяцев"),
        (22, "22 mēnešus", "22 месяца"),
        (31, "31 mēnesi", "31 месяц"),
        (111, "111 mēnešus", "111 месяцев"),
    ],
)
def test_periods_of_months_agree_with_their_number(count: int, latvian: str, russian: str) -> None:
    assert lv.months(count) == latvian
    assert ru.months(count) == russian
    assert en.months(count).endswith("month" if count == 1 else "months")


def test_the_polite_address_is_plural_and_no_text_guesses_a_gender() -> None:
    texts = [lv.Latvian().notice(3), *lv.PROMPTS.values()]
    assert "Jūs esat sazvanījuši" in texts[0]
    for text in texts:
        assert "sazvanījis" not in text and "apmierināts" not in text


def test_every_language_has_every_prompt() -> None:
    for language in ("lv-LV", "en-GB", "en-US", "ru-RU"):
        texts = speech.texts_for(language)
        assert texts is not None
        for prompt in speech.PROMPTS:
            assert texts.render(prompt), (language, prompt)


def test_spoken_puts_latvian_first_and_skips_languages_without_texts() -> None:
    said = speech.spoken([speech.GOODBYE], ["ru-RU", "de-DE", "lv-LV"])
    assert [language for language, _ in said] == ["lv-LV", "ru-RU"]
