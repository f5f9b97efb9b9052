"""`/twilio/recording-status`: a recording is ready (or absent) at Twilio.

The view stores a pending row and answers 204 at once: Twilio waits 15 s at most, and the
download happens later in the ingestion job, never here. RecordingStartTime is RFC 2822 (as
Twilio writes it) or ISO 8601; one without an offset is UTC, as all of Twilio's times are.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from flask import Blueprint, abort
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from callcenter import logs
from callcenter.adapters.twilio_api import RECORDING_SID
from callcenter.calls import outage
from callcenter.db import DatabaseTimeout
from callcenter.recordings.callback import RecordingCallback, check_start_time, record_callback
from callcenter.runtime import Runtime
from callcenter.twilio_values import CALL_SID, parse_twilio_time
from webhooks import paths
from webhooks.forms import Incoming
from webhooks.front import Reply, route
from webhooks.security import MissingField, require, twilio_webhook
from webhooks.voice import FAILURES

log = logging.getLogger(__name__)

bp = Blueprint("recordings", __name__)

KNOWN_STATUSES = ("in-progress", "completed", "absent", "failed")
_ERROR_CODE = re.compile(r"^[0-9]{1,10}$")


class BadField(Exception):
    """A field is present but unusable; answered with 400 naming it."""


def _bad_request(message: str) -> Reply:
    log.warning("recording-status refused: %s", message)
    abort(400, description=message)


def _optional_int(form: MultiDict[str, str], name: str, low: int, high: int) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadField(f"{name} is not a whole number: {raw!r}") from None
    if value == -1:
        # Twilio's "not known yet"; only seen on in-progress recordings.
        return None
    if not low <= value <= high:
        raise BadField(f"{name} is out of range: {value}")
    return value


def parse_callback(form: MultiDict[str, str], *, received_at: datetime) -> RecordingCallback:
    """Turn the signed form into a typed callback; raise MissingField or BadField."""
    fields = require(form, "RecordingSid", "CallSid", "RecordingStatus", "AccountSid")
    if not RECORDING_SID.match(fields["RecordingSid"]):
        raise BadField("RecordingSid is not a recording SID")
    if not CALL_SID.match(fields["CallSid"]):
        raise BadField("CallSid is not a call SID")
    raw_start = form.get("RecordingStartTime", "").strip()
    if raw_start:
        try:
            started_at = parse_twilio_time(raw_start)
        except ValueError:
            raise BadField(f"RecordingStartTime is not a time: {raw_start!r}") from None
        try:
            check_start_time(started_at, received_at)
        except ValueError as exc:
            raise BadField(f"RecordingStartTime: {exc}") from None
    else:
        # Twilio always sends it; should it ever not, the time we heard of the recording is
        # later than its start, so the retention clock errs on keeping audio longer.
        started_at = received_at
    error_code = form.get("ErrorCode", "").strip() or None
    if error_code is not None and not _ERROR_CODE.match(error_code):
        raise BadField(f"ErrorCode is not a number: {error_code!r}")
    if error_code == "0":
        error_code = None
    source = form.get("RecordingSource", "").strip()[:40] or None
    return RecordingCallback(
        recording_sid=fields["RecordingSid"],
        call_sid=fields["CallSid"],
        status=fields["RecordingStatus"],
        started_at=started_at,
        duration_seconds=_optional_int(form, "RecordingDuration", 0, 10 * 24 * 3600),
        channels=_optional_int(form, "RecordingChannels", 1, 2),
        source=source,
        error_code=error_code,
    )


@route(bp, paths.RECORDING_STATUS)
@twilio_webhook
def recording_status(runtime: Runtime, incoming: Incoming) -> Reply:
    """Store a recording's pending row (downloaded later by the ingestion job); 204."""
    now = runtime.now()
    form = incoming.form
    try:
        fields = require(form, "RecordingSid", "CallSid", "RecordingStatus", "AccountSid")
        status = fields["RecordingStatus"]
        if status not in KNOWN_STATUSES:
            raise BadField(f"RecordingStatus {status!r} is not one of {', '.join(KNOWN_STATUSES)}")
        if status == "in-progress":
            # Nothing to keep yet; `completed` or `absent` follows.
            return Reply(204)
        callback = parse_callback(form, received_at=now)
    except (MissingField, BadField) as exc:
        return _bad_request(str(exc))

    def work(session: Session) -> None:
        # A call answered by the fallback while the database was out of reach has no row
        # yet: written now, so its recording belongs to a call in the log.
        outage.record_unknown_call(
            session,
            call_sid=callback.call_sid,
            from_number="",
            to_number="",
            started_at=callback.started_at,
        )
        record_callback(session, callback, runtime.settings, now=now)

    try:
        runtime.write(work, key=callback.call_sid)
    except (SQLAlchemyError, DatabaseTimeout) as exc:
        # Twilio retries a 5xx; reconciliation catches what is lost beyond that.
        log.error(
            "recording-status for %s could not be stored: %s",
            callback.recording_sid,
            logs.cause(exc),
            exc_info=FAILURES.first(exc),
        )
        return Reply.plain(503, "temporarily unavailable")
    return Reply(204)
