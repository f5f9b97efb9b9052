"""`/twilio/voice/status`: call progress events from Twilio, answered with 204.

Twilio delivers each event at least once and in any order; `outcomes.record_status` stores it
once and derives the call's outcome again. An event for a call we do not know is logged and
still answered 204, so that Twilio stops retrying something no retry can fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint
from sqlalchemy.exc import DBAPIError

from callcenter import logs, phones
from callcenter.calls import outcomes
from callcenter.runtime import Runtime
from webhooks import paths
from webhooks.forms import Incoming
from webhooks.front import Reply, route
from webhooks.security import twilio_webhook
from webhooks.voice import FAILURES

log = logging.getLogger(__name__)

bp = Blueprint("status", __name__)

T = TypeVar("T")

# A deadlock or a busy SQLite file is worth another go before Twilio's own retry.
ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.05


def with_retries(work: Callable[[], T]) -> T:
    """Run one transaction, again when the database reports a transient conflict."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work()
        except DBAPIError as exc:
            if exc.connection_invalidated or attempt == ATTEMPTS or not _transient(exc):
                raise
            log.info("status callback: transient database conflict, attempt %d", attempt)
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable")


def _transient(exc: DBAPIError) -> bool:
    # PostgreSQL: deadlock_detected, serialization_failure; SQLite: a lock held too long.
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001") or "database is locked" in str(exc.orig)


@route(bp, paths.STATUS)
@twilio_webhook
def status(runtime: Runtime, incoming: Incoming) -> Reply:
    """Store one call progress event and fold it into the call's outcome."""
    form = incoming.form.to_dict(flat=True)
    try:
        event = outcomes.status_event(form)
    except outcomes.BadEvent as exc:
        return Reply.plain(400, str(exc))
    now = runtime.now()

    def work() -> str:
        # Committed with the other threads' events of the moment (db.GroupCommit).
        return runtime.write_together(
            outcomes.STATUS_WRITES,
            (runtime.settings, event, now),
            key=form.get("ParentCallSid") or event.leg_sid,
        )

    try:
        result = with_retries(work)
    except Exception as exc:
        # Not the caller's fault and not a 500: Twilio may retry a 503 later.
        log.error(
            "status callback for %s could not be stored: %s",
            event.leg_sid,
            logs.cause(exc),
            exc_info=FAILURES.first(exc),
        )
        return Reply.plain(503, "temporarily unavailable")
    if result == "unknown":
        log.warning(
            "status %s for unknown call %s (parent %s) from %s to %s",
            event.status,
            event.leg_sid,
            form.get("ParentCallSid") or "-",
            phones.mask(form.get("From")),
            phones.mask(form.get("To")),
        )
    return Reply(204)
