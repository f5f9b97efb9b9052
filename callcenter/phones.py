"""Phone numbers: E.164 normalisation with `phonenumbers`, and masking for log lines."""

from __future__ import annotations

import re

import phonenumbers

# Latvia: an eight-digit number typed without a country code is Latvian.
DEFAULT_REGION = "LV"

# How Twilio presents a withheld caller ID; there is nobody to call back.
WITHHELD = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "+266696687",
        "+86282452253",
        "+7378742833",
        "+2562533",
        "+8656696",
    }
)


_PLAIN_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# Numbers that look like E.164 but are Twilio's stand-ins; checked in full.
_UNLIKELY_PREFIXES = ("+266", "+86282", "+737", "+256", "+8656")


class InvalidPhone(ValueError):
    """A value that is not a dialable phone number."""


def normalize(raw: str, region: str = DEFAULT_REGION) -> str:
    """Return a phone number in E.164, or raise InvalidPhone saying why."""
    text = raw.strip()
    if not text:
        raise InvalidPhone("empty phone number")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r} ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_withheld(number: str | None) -> bool:
    """Tell whether Twilio's `From` means the caller withheld their number."""
    if number is None:
        return True
    value = number.strip().lower()
    if value in WITHHELD:
        return True
    if _PLAIN_E164.match(value) and not value.startswith(_UNLIKELY_PREFIXES):
        # The common case, decided without a full parse (it runs on every call).
        return False
    try:
        return not phonenumbers.is_valid_number(phonenumbers.parse(number, DEFAULT_REGION))
    except phonenumbers.NumberParseException:
        return True


def mask(number: str | None) -> str:
    """Mask a number for log lines: keep the country code and last two digits."""
    if not number:
        return "-"
    digits = number.strip()
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:4] + "*" * (len(digits) - 6) + digits[-2:]
