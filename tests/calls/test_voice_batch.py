"""A batch of new calls (VoicePath.start_calls) is stored and answered as one by one.

On PostgreSQL one statement inserts a batch's calls from one JSON parameter, each only if the
directory is still at the version its decision was made on; on SQLite each call runs as
`start_call`. Both are checked here against `start_call` one call at a time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from callcenter.calls.fastpath import NewCall, Started, VoicePath
from callcenter.directory import service as directory
from callcenter.runtime import Runtime
from tests.calls.conftest import CALLER, DEPARTMENT, DIRECT, OFFICE, OTHER_CALLER, Clock, sid

pytestmark = pytest.mark.usefixtures("staffed")

COLUMNS = (
    "call_sid, line_id, from_number, to_number, intended, plan, step, routing_note, notice, "
    "recorded, survey, after_hours, status, outcome, answered_by_id, as_substitute, "
    "started_at, answered_at, ended_at, ring_seconds, talk_seconds, updated_at"
)


def voice_path(app: Flask) -> VoicePath:
    path: VoicePath = Runtime.of(app).kept["webhooks.voice_path"]
    return path


def rows(cursor: Any) -> list[tuple[Any, ...]]:
    cursor.execute(f"SELECT {COLUMNS} FROM calls ORDER BY call_sid")  # noqa: S608
    return [tuple(row) for row in cursor.fetchall()]


def stored_rows(runtime: Runtime) -> list[tuple[Any, ...]]:
    with runtime.pinned.transaction() as cursor:
        return rows(cursor)


def answers(started: list[Started]) -> list[tuple[str, bytes]]:
    return [(done.decision.answer.kind, done.body) for done in started]


def one_by_one(path: VoicePath, cursor: Any, calls: list[NewCall]) -> list[Started]:
    return [
        path.start_call(
            cursor,
            call_sid=call.call_sid,
            from_number=call.from_number,
            to_number=call.to_number,
            now=call.now,
        )
        for call in calls
    ]


def test_a_batch_of_calls_is_stored_and_answered_as_one_by_one(
    app: Flask, runtime: Runtime, clock: Clock
) -> None:
    path = voice_path(app)
    retried = NewCall(sid(), CALLER, DIRECT, clock.now)
    with runtime.pinned.transaction() as cursor:
        one_by_one(path, cursor, [retried])
    (before,) = stored_rows(runtime)
    later = clock.tick(30)
    calls = [
        NewCall(sid(), CALLER, DIRECT, later),
        NewCall(sid(), OTHER_CALLER, DEPARTMENT, later + timedelta(milliseconds=3)),
        NewCall(sid(), 'sip:Jānis "Ozols"@example.test', OFFICE, later),
        NewCall(sid(), "anonymous", DEPARTMENT, later),
        # A number that is not one of our lines: the fallback, and a row that says so.
        NewCall(sid(), CALLER, "+37167009999", later),
        # A retried webhook of a call stored a moment ago.
        NewCall(retried.call_sid, CALLER, DIRECT, later),
    ]
    calls.sort(key=lambda call: call.call_sid)

    driver = runtime.pinned
    with driver.transaction() as cursor:
        alone = one_by_one(path, cursor, calls)
        expected = rows(cursor)
        cursor.connection.rollback()
    with driver.transaction() as cursor:
        together = path.start_calls(cursor, calls)
    stored = stored_rows(runtime)

    assert answers(together) == answers(alone)
    assert stored == expected
    assert len(stored) == len(calls)
    kinds = {done.decision.answer.kind for done in together}
    assert "connect" in kinds and "unknown-line" in kinds, kinds
    # The retried call kept the row its first webhook wrote, timestamps and all.
    assert before in stored


def test_the_same_call_twice_in_a_batch_is_stored_once_and_both_hear_the_same(
    app: Flask, runtime: Runtime, clock: Clock
) -> None:
    path = voice_path(app)
    twice = NewCall(sid(), CALLER, DEPARTMENT, clock.now)
    with runtime.pinned.transaction() as cursor:
        started = path.start_calls(cursor, [twice, twice])
    stored = stored_rows(runtime)
    assert [row[0] for row in stored] == [twice.call_sid]
    assert started[0].body == started[1].body and b"<Dial" in started[0].body


def test_a_directory_that_moved_under_the_batch_is_read_again(
    app: Flask, runtime: Runtime, clock: Clock, sessions: sessionmaker[Session], engine: Engine
) -> None:
    path = voice_path(app)
    with runtime.pinned.transaction() as cursor:
        path.start_calls(cursor, [NewCall(sid(), CALLER, DIRECT, clock.now)])
    loads = runtime.directory.loads
    # Another process puts the person the direct line rings away: the snapshot is stale.
    with sessions.begin() as session:
        directory.add_absence(
            session,
            "akalnins",
            starts_at=clock.now - timedelta(hours=1),
            ends_at=clock.now + timedelta(hours=1),
            substitute_key="lozola",
        )
    calls = sorted(
        (NewCall(sid(), CALLER, DIRECT, clock.now) for _ in range(3)),
        key=lambda call: call.call_sid,
    )
    with runtime.pinned.transaction() as cursor:
        started = path.start_calls(cursor, calls)
    assert runtime.directory.loads > loads
    assert all(b"+37120000002" in done.body for done in started), started[0].body
    with engine.connect() as connection:
        substitutes = connection.execute(
            text("SELECT count(*) FROM calls WHERE as_substitute = :no AND plan LIKE :lozola"),
            {"no": False, "lozola": '%"lozola"%'},
        ).scalar_one()
    assert substitutes == 3
