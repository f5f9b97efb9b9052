"""What the processes check at start and what `/healthz` reports.

A process that starts on a database nobody ran `callcenter db upgrade` on would answer every
caller with the apology while saying it is healthy; so the web and scheduler processes refuse
to start, with one line, unless the schema is at the newest revision and storage answers.
`/healthz` answers 503 naming what is wrong, and reports what an operator watches: the schema
revision, the scheduler lease, the last sweep, and the ingestion backlog.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from callcenter import leases, logs, migrate
from callcenter.audit.models import RetentionEntry
from callcenter.recordings.models import Recording
from callcenter.runtime import Runtime

log = logging.getLogger(__name__)

# The scheduler's lease (retention/scheduler.py names it and renews it every 30 s).
SCHEDULER_LEASE = "scheduler"
UPGRADE = "run `callcenter db upgrade`"


class NotReady(Exception):
    """The process cannot serve yet; the message is one line saying what to do."""


def schema_problem(engine: Engine) -> str | None:
    """Return None if the schema is at the newest revision, else one line saying so."""
    current, head = migrate.revisions(engine)
    if current == head:
        return None
    if not current:
        return f"the database has no schema: {UPGRADE}"
    return (
        f"the database schema is at revision {', '.join(sorted(current))}, "
        f"not {', '.join(sorted(head))}: {UPGRADE}"
    )


def check_at_start(runtime: Runtime) -> None:
    """Raise NotReady unless the database is at the newest schema and storage answers."""
    try:
        problem = schema_problem(runtime.engine)
    except Exception as exc:
        raise NotReady(f"cannot open the database (DATABASE_URL): {logs.cause(exc)}") from None
    finally:
        # The web app is built in gunicorn's master (--preload): no connection may be forked.
        runtime.engine.dispose()
    if problem is not None:
        raise NotReady(problem)
    try:
        runtime.storage.check()
    except Exception as exc:
        raise NotReady(f"storage (RECORDINGS_URL) cannot be reached: {logs.cause(exc)}") from None


def _seconds(since: datetime, now: datetime) -> int:
    return max(0, round((now - since).total_seconds()))


def facts(session: Session, now: datetime) -> dict[str, Any]:
    """What the scheduler and the jobs have done, as /healthz reports it."""
    lease = session.get(leases.Lease, SCHEDULER_LEASE)
    scheduler = None
    if lease is not None:
        scheduler = {
            "holder": lease.holder,
            # Renewed every 30 s for 120 s: "expires in" below 90 s means a renewal was missed.
            "expires_in_seconds": round((lease.expires_at - now).total_seconds()),
            "held": lease.expires_at > now,
        }
    last = session.scalars(
        select(RetentionEntry)
        .where(RetentionEntry.event == "sweep_finished")
        .order_by(RetentionEntry.seq.desc())
        .limit(1)
    ).first()
    sweep = None
    if last is not None:
        details = dict(last.details or {})
        sweep = {
            "at": last.at.isoformat(),
            "age_seconds": _seconds(last.at, now),
            "result": "failed" if details.get("failed") or details.get("stopped") else "ok",
            **{k: v for k, v in details.items() if isinstance(v, int | bool)},
        }
    backlog, oldest = session.execute(
        select(func.count(), func.min(Recording.created_at)).where(Recording.status == "pending")
    ).one()
    return {
        "scheduler": scheduler,
        "last_sweep": sweep,
        "ingestion": {
            "backlog": int(backlog or 0),
            "oldest_pending_seconds": None if oldest is None else _seconds(oldest, now),
        },
    }


def _failed(what: str, exc: Exception) -> str:
    # The cause, with addresses and names, goes to the log; the public answer names the kind.
    log.warning("health check: %s: %s", what, logs.cause(exc))
    return f"error: {type(exc).__name__}"


def report(runtime: Runtime, now: datetime) -> tuple[bool, dict[str, Any]]:
    """Check the database, the schema and storage; return (healthy, what /healthz answers)."""
    body: dict[str, Any] = {}
    try:
        current, head = migrate.revisions(runtime.engine)
        body["database"] = "ok"
        body["schema"] = "ok" if current == head else f"error: behind the code: {UPGRADE}"
        body["schema_revision"] = ",".join(sorted(current)) or None
    except Exception as exc:
        body["database"] = _failed("database", exc)
        body["schema"] = "unknown"
        body["schema_revision"] = None
    try:
        runtime.storage.check()
        body["storage"] = "ok"
    except Exception as exc:
        body["storage"] = _failed("storage", exc)
    if body["database"] == "ok":
        try:
            with runtime.sessions() as session:
                body.update(facts(session, now))
        except Exception as exc:
            body["database"] = _failed("database", exc)
    healthy = all(body[name] == "ok" for name in ("database", "schema", "storage"))
    return healthy, body
