"""The retention policy: when a recording's audio is due for deletion, and where it is kept.

The standard keeps recordings three calendar months (RETENTION_MONTHS). The clock starts at
Twilio's RecordingStartTime and the months are counted on the line's local calendar, because
that is the calendar the caller and the compliance reviewer read: a call at 10:15 local time on
30 November is due at 10:15 local time on the last day of February.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dateutil.relativedelta import relativedelta

from callcenter.settings import Settings


def due_at(started_at: datetime, settings: Settings) -> datetime:
    """Return when audio recorded at `started_at` is due for deletion, as an aware UTC time.

    Rules:
    - Add `settings.retention_months` calendar months to the local wall time in
      `settings.timezone`; a day past the end of the shorter month becomes its last day
      (relativedelta's rule: 30 November + 3 months = 28 or 29 February).
    - When the resulting wall time does not exist (spring-forward gap) or exists twice
      (autumn fold), take the LATER of the two candidate instants: nothing may be deleted
      before it is due, so the ambiguity is resolved on the side that keeps audio longer
      (by at most the one-hour DST shift).
    - `started_at` must be timezone-aware; a naive time is a bug about which zone was meant.
    """
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ValueError(f"naive datetime {started_at!r}: pass an aware one")
    zone = settings.timezone
    wall = started_at.astimezone(zone).replace(tzinfo=None) + relativedelta(
        months=settings.retention_months
    )
    # zoneinfo reads fold=0 and fold=1 as the two readings of an ambiguous or missing wall
    # time; for an ordinary wall time both give the same instant.
    candidates = (wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    return max(candidates)


def media_key(recording_sid: str, started_at: datetime) -> str:
    """Return the object key for a recording: its UTC start date and SID, nothing personal."""
    day = started_at.astimezone(UTC)
    return f"recordings/{day:%Y/%m/%d}/{recording_sid}.wav"
