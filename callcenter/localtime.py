"""Local wall time in the line's zone: parsing what people type, rendering what they read.

The command line, the console's forms and the JSON API all read times through `parse_local`,
so a time without an offset means the same instant wherever it was typed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil import tz


class LocalTimeError(ValueError):
    """A time that cannot be read, or that names no single instant; the message says which."""


def parse_local(value: str, zone: ZoneInfo) -> datetime:
    """Parse ISO 8601 into UTC; a time without an offset is wall time in `zone`.

    Rules: on the DST change days a local time can be skipped or happen twice; both are
    refused (naming the offsets to choose from) rather than guessed.
    """
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LocalTimeError(f"not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        if not tz.datetime_exists(parsed, zone):
            raise LocalTimeError(
                f"{value} does not exist in {zone.key} (the clocks skip it); "
                "give a time outside the change, or an offset"
            )
        if tz.datetime_ambiguous(parsed, zone):
            raise LocalTimeError(
                f"{value} happens twice in {zone.key} (the clocks go back); "
                "give its offset, e.g. " + ", ".join(_offsets(parsed, zone))
            )
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _offsets(local: datetime, zone: ZoneInfo) -> list[str]:
    return [local.replace(tzinfo=zone, fold=fold).isoformat() for fold in (0, 1)]


def local_iso(at: datetime | None, zone: ZoneInfo) -> str | None:
    """Render a time as ISO 8601 in `zone`, with its offset."""
    if at is None:
        return None
    return at.astimezone(zone).isoformat()
