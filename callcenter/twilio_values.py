"""Twilio's own value formats, read in one place: SIDs, times, the account a request names.

Every webhook and every job that reads a Twilio value uses these, so that one malformed value
gets one answer everywhere (a 400 on a webhook), never a 500 on one route and a 400 on another.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from datetime import UTC, datetime

# Twilio documents every SID as two letters and 32 hexadecimal digits.
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}\Z")
RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}\Z")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}\Z")
# The SID fields a webhook may carry, each with its documented form: a value of another form
# is not Twilio's, and is refused (400) on every webhook before anything reads it.
SID_FIELDS = {
    "CallSid": CALL_SID,
    "ParentCallSid": CALL_SID,
    "DialCallSid": CALL_SID,
    "RecordingSid": RECORDING_SID,
    "AccountSid": ACCOUNT_SID,
}


def malformed_sids(form: Mapping[str, str]) -> list[str]:
    """Name the SID fields present in a form whose value is not of their documented form."""
    return [
        name
        for name, pattern in SID_FIELDS.items()
        if (value := (form.get(name) or "").strip()) and not pattern.match(value)
    ]


def parse_twilio_time(value: str) -> datetime:
    """Parse Twilio's RFC 2822 time (or ISO 8601) into an aware UTC datetime.

    Rules: a time without a zone is taken as UTC, which is how Twilio writes its times (RFC
    2822's "-0000" means UTC with no claim about the local zone); a value that is neither
    format, or that names no instant a datetime can hold, raises ValueError.
    """
    text = value.strip()
    parsed: datetime | None = None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an RFC 2822 or ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Year 9999 at -05:00, or year 1 at +05:00: no instant a datetime can hold.
        raise ValueError(f"not a representable time: {value!r}") from None
