"""db.Prepared: a Core statement on the DB-API cursor writes and reads what SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.calls import outage
from callcenter.calls.models import Call, CallEvent
from callcenter.db import Prepared
from callcenter.directory import service as directory
from tests.sids import new_sid

_EVENTS = cast(Table, CallEvent.__table__)
_CALLS = cast(Table, Call.__table__)
COLUMNS = ("id", "call_id", "dedupe_key", "kind", "leg_sid", "status", "payload", "received_at")
READ = Prepared(select(*(_EVENTS.c[name] for name in COLUMNS)).where(
    _EVENTS.c.call_id == bindparam("call_id")
).order_by(_EVENTS.c.id))  # fmt: skip
INSERT = {
    name: Prepared(dialect.insert(_EVENTS).returning(_EVENTS.c.id))
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _call(session: Session) -> int:
    sid = new_sid("CA")
    now = datetime.now(UTC)
    outage.record_unknown_call(
        session, call_sid=sid, from_number="+37129111111", to_number="", started_at=now
    )
    found = session.scalar(select(Call.id).where(Call.call_sid == sid))
    assert found is not None
    return found


def _event(call_id: int, key: str, at: datetime) -> dict[str, object]:
    return {
        "call_id": call_id, "dedupe_key": key, "kind": "status", "leg_sid": new_sid("CA"),
        "status": "ringing", "payload": {"CallStatus": "ringing", "Vārds": "Jānis ✓"},
        "received_at": at,
    }  # fmt: skip


def test_a_row_written_either_way_reads_back_the_same_either_way(
    sessions: sessionmaker[Session],
) -> None:
    at = datetime(2026, 12, 2, 10, 30, 15, 123456, tzinfo=UTC)
    with sessions.begin() as session:
        call_id = _call(session)
        dialect = session.get_bind().dialect.name
        ours = INSERT[dialect].scalar(session, _event(call_id, "ours", at))
        theirs = session.execute(
            _EVENTS.insert().returning(_EVENTS.c.id), _event(call_id, "theirs", at)
        ).scalar()
    with sessions() as session:
        read_by_us = READ.rows(session, {"call_id": call_id})
        read_by_them = [
            tuple(row)
            for row in session.execute(
                select(*(_EVENTS.c[name] for name in COLUMNS))
                .where(_EVENTS.c.call_id == call_id)
                .order_by(_EVENTS.c.id)
            )
        ]
    assert [row[0] for row in read_by_us] == [ours, theirs]
    assert read_by_us == read_by_them
    for row in read_by_us:
        assert row[6] == {"CallStatus": "ringing", "Vārds": "Jānis ✓"}
        assert row[7] == at and row[7].utcoffset() == timedelta(0)


def test_it_runs_in_the_session_s_transaction(sessions: sessionmaker[Session]) -> None:
    at = datetime.now(UTC)
    with sessions() as session:
        call_id = _call(session)
        dialect = session.get_bind().dialect.name
        INSERT[dialect].scalar(session, _event(call_id, "rolled-back", at))
        assert len(READ.rows(session, {"call_id": call_id})) == 1
        session.rollback()
        assert READ.rows(session, {"call_id": call_id}) == []


def test_a_driver_error_is_sqlalchemy_s_and_the_session_rolls_back(
    sessions: sessionmaker[Session],
) -> None:
    at = datetime.now(UTC)
    with sessions.begin() as session:
        call_id = _call(session)
        dialect = session.get_bind().dialect.name
        INSERT[dialect].scalar(session, _event(call_id, "twice", at))
    with sessions() as session, pytest.raises(IntegrityError):
        INSERT[dialect].scalar(session, _event(call_id, "twice", at))
    with sessions() as session:
        assert len(READ.rows(session, {"call_id": call_id})) == 1


def test_a_statement_with_python_side_defaults_is_refused(session: Session) -> None:
    # calls.updated_at has an onupdate default: SQLAlchemy computes it, the cursor would not.
    touch = Prepared(update(_CALLS).where(_CALLS.c.id == bindparam("call_id")))
    with pytest.raises(TypeError, match="Python-side defaults"):
        touch.rows(session, {"call_id": 1, "status": "ringing"})


def test_a_statement_s_own_values_and_subqueries_are_bound_as_sqlalchemy_binds_them(
    sessions: sessionmaker[Session],
) -> None:
    # The fallback call's INSERT carries literal values (`plan=[]`, `step=0`, ...) and finds
    # its line by a subquery on a parameter it also writes.
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone="20000001")
        line = directory.add_line(session, "+37167000001", target="staff:jberzins")
        sid = new_sid("CA")
        assert outage.record_unknown_call(
            session, call_sid=sid, from_number="", to_number="+37167000001",
            started_at=datetime.now(UTC),
        )  # fmt: skip
        assert not outage.record_unknown_call(
            session, call_sid=sid, from_number="", to_number="", started_at=datetime.now(UTC)
        )
    with sessions() as session:
        call = session.scalars(select(Call).where(Call.call_sid == sid)).one()
        assert (call.plan, call.step, call.recorded, call.as_substitute) == ([], 0, False, False)
        assert (call.line_id, call.notice, call.from_number) == (line.id, "fallback", "unknown")
