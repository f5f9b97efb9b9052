"""Log lines: one format with a timestamp in every process, JSON lines behind LOG_FORMAT=json.

Every line is escaped as it is written: a control character or a newline in a value that came
from a request (a CallSid, a path) is shown as `\\xNN`, so that no request can forge a log line
(log injection). Only a traceback keeps its newlines, and it is written by the service's code.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

# The libraries whose INFO lines are not the operator's business: APScheduler writes a line
# per job run ("Running job ...", "executed successfully"), botocore one per credential lookup.
QUIET = ("apscheduler", "botocore", "boto3", "s3transfer", "urllib3", "alembic")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The most of one value from a request that a log line shows.
MAX_VALUE_CHARS = 120


def escape(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """Return a value from a request as one printable, bounded piece of a log line."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + f"...({len(text)} chars)"
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: message`, the time in ISO 8601 UTC, the message escaped."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        # json.dumps escapes every control character; the line is one line.
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every logger's lines to stderr in the one format; quiet the chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def gunicorn_logconfig(log_format: str) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its error and access lines in the same format."""
    cls = (
        "callcenter.logs.JsonFormatter" if log_format == "json" else "callcenter.logs.TextFormatter"
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"callcenter": {"()": cls}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "callcenter",
                "stream": "ext://sys.stderr",
            },
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "callcenter",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
            **{name: {"level": "WARNING"} for name in QUIET},
        },
    }


class OncePerOutage:
    """Decide when a failure's traceback is worth writing: once per kind, then once a while.

    A database outage fails every webhook the same way; one traceback tells the story, and a
    line per webhook (with the cause) tells how long it lasted.
    """

    def __init__(self, quiet_seconds: float = 300.0) -> None:
        self.quiet_seconds = quiet_seconds
        self._last: dict[str, float] = {}

    def first(self, exc: BaseException) -> bool:
        """Whether this failure is the first of its kind in `quiet_seconds` (then show it)."""
        kind = _kind(exc)
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.quiet_seconds:
            return False
        self._last[kind] = now
        return True


# Whatever a database outage raises (refused, timed out, locked, dropped) is one kind.
_DATABASE_MODULES = ("sqlalchemy", "psycopg", "sqlite3", "callcenter.db")


def _kind(exc: BaseException) -> str:
    module = type(exc).__module__
    if module.startswith(_DATABASE_MODULES):
        return "database"
    return f"{module}.{type(exc).__qualname__}"


def cause(exc: BaseException) -> str:
    """One line naming a failure: its type and the first line of what it says."""
    root: BaseException = exc
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        root = orig
    first = (str(root).strip().splitlines() or [""])[0]
    return escape(f"{type(root).__name__}: {first}", 300)
