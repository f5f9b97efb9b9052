"""Calls the service answered without the database: written when Twilio reports on them.

While the database cannot be reached, every call is answered with the fallback TwiML (the
notice, then FALLBACK_NUMBER) and no call row is written. Twilio's later status and recording
callbacks name those calls: each unknown call of our account is then written, marked as
answered by the fallback, so that the call log is complete after an outage.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callcenter.calls.models import Call
from callcenter.calls.states import Outcome
from callcenter.db import Prepared, is_postgres
from callcenter.directory.models import Line

log = logging.getLogger(__name__)

FALLBACK_NOTE = (
    "answered by the fallback (notice, then FALLBACK_NUMBER): no call row was written when the "
    "call came in; written from Twilio's later callbacks"
)
NOTICE = "fallback"
UNKNOWN = "unknown"


@functools.cache
def _insert_statement(postgres: bool) -> Any:
    """The fallback call's INSERT, built once; every callback binds its values to it.

    Rules: ignores a conflict on the CallSid (written once, whatever the order or number of
    callbacks); RETURNING tells whether this statement wrote it.
    """
    insert = postgresql.insert if postgres else sqlite.insert
    line_id = select(Line.id).where(Line.number == bindparam("to_number")).scalar_subquery()
    return (
        insert(Call)
        .values(
            call_sid=bindparam("call_sid"),
            line_id=line_id,
            from_number=bindparam("from_number"),
            to_number=bindparam("to_number"),
            plan=[],
            step=0,
            routing_note=FALLBACK_NOTE,
            notice=NOTICE,
            after_hours=False,
            outcome=Outcome.IN_PROGRESS,
            as_substitute=False,
            # Its default, written out: a Python-side default would not be applied by db.Prepared.
            recorded=False,
            started_at=bindparam("started_at"),
            updated_at=bindparam("started_at"),
        )
        .on_conflict_do_nothing(index_elements=["call_sid"])
        .returning(Call.id)
    )


# Run on the DB-API cursor (db.Prepared): every status and recording callback runs it.
_INSERT = {postgres: Prepared(_insert_statement(postgres)) for postgres in (False, True)}


def record_unknown_call(
    session: Session, *, call_sid: str, from_number: str, to_number: str, started_at: datetime
) -> bool:
    """Write the row of a call answered without the database; tell whether this wrote it.

    Rules: written once whatever the number or order of callbacks (an INSERT that ignores a
    conflict on the CallSid); its line is the one its `To` names, if any.
    """
    # The line from a subquery, not a read before the write: on SQLite a transaction that
    # reads and then writes fails at once if another writer committed in between.
    # Core, not the ORM: the ORM's bulk-insert path costs more than the statement itself.
    inserted = _INSERT[is_postgres(session)].rows(
        session,
        {
            "call_sid": call_sid,
            "from_number": from_number or UNKNOWN,
            "to_number": to_number or UNKNOWN,
            "started_at": started_at,
        },
    )
    if inserted:
        log.warning("call %s was answered by the fallback; its row is written now", call_sid)
    return bool(inserted)


def name_the_line(session: Session, call_id: int, to_number: str) -> None:
    """Fill in the line of a call written from a child leg's callback, once the caller's own
    leg names it."""
    if not to_number:
        return
    line_id = session.scalar(select(Line.id).where(Line.number == to_number))
    session.execute(
        update(Call)
        .where(Call.id == call_id, Call.to_number == UNKNOWN)
        .values(to_number=to_number, line_id=line_id)
        .execution_options(synchronize_session=False)
    )
