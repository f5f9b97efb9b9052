"""The retention log exported as CSV or JSON (`retention log --format`, the console, the API).

The log export streams (one page of entries in memory at a time) and writes times as ISO 8601
with the offset of the line's zone, oldest entry first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from callcenter.audit import log as retention_log

LOG_COLUMNS = ("seq", "at", "event", "recording_sid", "actor", "details", "prev_hash", "hash")
FORMATS = ("json", "csv")


def log_rows(
    session: Session, *, timezone: ZoneInfo, since: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the log's entries as dicts, oldest first, times in `timezone` with the offset."""
    for entry in retention_log.iter_entries(session, since=since):
        yield retention_log.as_dict(entry, timezone)


def iter_log(
    session: Session,
    *,
    timezone: ZoneInfo,
    since: datetime | None = None,
    fmt: str = "json",
) -> Iterator[str]:
    """Yield the log as text pieces: one JSON array, or CSV with a header (streamable)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    rows = log_rows(session, timezone=timezone, since=since)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()

        def taken() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        yield taken()
        for row in rows:
            writer.writerow(
                {**row, "details": json.dumps(row["details"], sort_keys=True, ensure_ascii=False)}
            )
            yield taken()
        return
    # One JSON array, written entry by entry so a long log never sits in memory whole.
    yield "["
    first = True
    for row in rows:
        yield ("" if first else ",") + json.dumps(row, ensure_ascii=False, sort_keys=True)
        first = False
    yield "]\n"


def write_log(
    out: TextIO,
    session: Session,
    *,
    timezone: ZoneInfo,
    since: datetime | None = None,
    fmt: str = "json",
) -> int:
    """Write the log to `out` as one JSON array or as CSV with a header; return the count."""
    pieces = 0
    for piece in iter_log(session, timezone=timezone, since=since, fmt=fmt):
        out.write(piece)
        pieces += 1
    # One piece an entry, and the header (CSV) or the two brackets (JSON) around them.
    return pieces - 1 if fmt == "csv" else pieces - 2
