"""The path every call takes, kept fast: one module that owns all of its caches.

`/twilio/voice` answers every call, and the service's own work there is measured against a
bare Flask app (benchmarks/webhook_throughput.py). The domain decides a call from plain,
immutable values (`intake.decide`); this module keeps what is costly to redo and safe to keep:

- the directory snapshot (`DirectoryCache`, checked by one number per call);
- decisions, per snapshot, under exactly what they depend on (`intake.decision_key`);
- each kept decision's columns as bound parameters, per dialect;
- each kept decision's rendered answer (TwiML bytes, from the renderer the webhook gives);
- the call row's INSERT, prepared once per dialect and run on the DB-API cursor; on
  PostgreSQL one INSERT for all the calls of a batch (`VoicePath.starts`).

Nothing here changes what a caller hears or what is stored: a kept decision is the one
`decide` would make again, and it is dropped with the snapshot it came from.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from callcenter import phones
from callcenter.calls.intake import (
    Answer,
    CallState,
    Decision,
    answer_for,
    decide,
    decision_key,
    find_call,
    row_columns,
)
from callcenter.calls.models import Call
from callcenter.db import Together, json_records, recordset_columns
from callcenter.directory.snapshot import Directory, DirectoryCache
from callcenter.settings import Settings

log = logging.getLogger(__name__)

_CALLS = cast(Table, Call.__table__)
# The call row as the voice webhook writes it: what the call is, then how it was decided.
_CALL_COLUMNS = ("call_sid", "from_number", "to_number", "started_at", "updated_at")
_FIXED = {"status": "ringing", "step": 0, "as_substitute": False}
_DECISION_COLUMNS = (*_FIXED, *row_columns())

# At most this many decisions are kept (lines x absences in force x dates: a handful).
DECISIONS_KEPT = 1024
# Times the directory may move under one call before the latest plan is kept regardless.
_ATTEMPTS = 3


class _CallInsert:
    """The call row's INSERT, prepared once per dialect and run on the DB-API cursor.

    SQLAlchemy's statement machinery costs more than the database's own work here (the voice
    benchmark measures it). Values go through the columns' own bind processors, so the row is
    stored exactly as the ORM would store it. The statement also returns the directory
    version, which saves a second statement: the plan is made from the snapshot first, and
    made again in the rare case that the directory moved.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect.name
        mark = "?" if dialect.paramstyle == "qmark" else "%s"

        def processor(name: str) -> Callable[[Any], Any]:
            found = _CALLS.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            return found or (lambda value: value)

        self.process_time = processor("started_at")
        self.decision_processors = [processor(name) for name in _DECISION_COLUMNS]
        columns = ", ".join((*_CALL_COLUMNS, *_DECISION_COLUMNS))
        count = len(_CALL_COLUMNS) + len(_DECISION_COLUMNS)
        # Built from the constant column names above; values are always bound parameters.
        self.sql = (
            f"INSERT INTO calls ({columns}) "  # noqa: S608
            f"VALUES ({', '.join(mark for _ in range(count))}) "
            "ON CONFLICT (call_sid) DO NOTHING "
            "RETURNING id, (SELECT version FROM directory_version WHERE id = 1)"
        )
        self.undo_sql = f"DELETE FROM calls WHERE id = {mark}"  # noqa: S608
        self.names = (*_CALL_COLUMNS, *_DECISION_COLUMNS)
        self.batch_sql = _batch_sql(dialect, self.names) if dialect.name == "postgresql" else ""

    def decision_params(self, decision: Decision) -> tuple[Any, ...]:
        values = {**_FIXED, **decision.columns}
        return tuple(
            process(values[name])
            for name, process in zip(_DECISION_COLUMNS, self.decision_processors, strict=True)
        )

    def run(
        self,
        cursor: Any,
        call_sid: str,
        from_number: str,
        to_number: str,
        now: datetime,
        params: tuple[Any, ...],
    ) -> tuple[int, int | None] | None:
        """Insert unless the CallSid exists; return (id, directory version), or None."""
        at = self.process_time(now)  # started_at and updated_at: the same instant
        cursor.execute(self.sql, (call_sid, from_number, to_number, at, at, *params))
        row = cursor.fetchone()
        return None if row is None else (row[0], row[1])

    def batch(
        self, cursor: Any, rows: list[tuple[Any, ...]], versions: list[int | None]
    ) -> tuple[set[str], int]:
        """Insert `rows` (PostgreSQL), each only if the directory is still at its version
        (None: regardless) and its CallSid is new; return (the CallSids inserted, the
        directory's version)."""
        records = json_records(
            {**dict(zip(self.names, row, strict=True)), _DECIDED_ON: version}
            for row, version in zip(rows, versions, strict=True)
        )
        cursor.execute(self.batch_sql, (records,))
        version, inserted = cursor.fetchone()
        return set(inserted or ()), int(version)

    def row(self, call: NewCall, params: tuple[Any, ...]) -> tuple[Any, ...]:
        """The call's row, in the order of `names`, its values bound as the ORM binds them."""
        at = self.process_time(call.now)
        return (call.call_sid, call.from_number, call.to_number, at, at, *params)


# The batch's rows carry the directory version each was decided on under this name.
_DECIDED_ON = "decided_on"


def _batch_sql(dialect: Dialect, names: tuple[str, ...]) -> str:
    """One INSERT of a batch's calls from one JSON parameter (PostgreSQL).

    The rows are inserted in their order (the batch's, by CallSid, so that two processes'
    batches never wait for each other in a circle), each only if its CallSid is new and the
    directory is still at the version its decision was made on; the statement returns the
    directory's version and the CallSids it inserted. One statement and one parameter where
    a statement per call took a round trip and a bound row each.
    """
    types = recordset_columns(_CALLS, names, dialect)
    columns = ", ".join(names)
    chosen = ", ".join(f"r.{name}" for name in names)
    # Built from the table's own column names and types; values come in the one parameter.
    return (
        "WITH v AS (SELECT COALESCE("  # noqa: S608
        "(SELECT version FROM directory_version WHERE id = 1), -1) AS version), "
        f"new AS (INSERT INTO calls ({columns}) SELECT {chosen} "
        f"FROM json_to_recordset(%s::json) AS r({types}, {_DECIDED_ON} BIGINT), v "
        f"WHERE r.{_DECIDED_ON} IS NULL OR r.{_DECIDED_ON} = v.version ORDER BY r.n "
        "ON CONFLICT (call_sid) DO NOTHING RETURNING call_sid) "
        "SELECT (SELECT version FROM v), (SELECT array_agg(call_sid) FROM new)"
    )


@dataclass(frozen=True, slots=True)
class NewCall:
    """A call as /twilio/voice reports it, to be routed and recorded."""

    call_sid: str
    from_number: str
    to_number: str
    now: datetime


@dataclass
class _Kept:
    """A decision kept for the life of its snapshot, with what it costs to redo."""

    snapshot: Directory
    settings: Settings
    decision: Decision
    params: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class Started:
    """A call as the voice route answers it: the decision and its rendered TwiML."""

    decision: Decision
    body: bytes


class VoicePath:
    """The voice route's fast path for one process: the snapshot, kept decisions, the INSERT."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        cache: DirectoryCache,
        engine: Engine,
        render: Callable[[Settings, Answer], bytes],
    ) -> None:
        # Read per call: settings are fixed in production, but tests replace them.
        self.settings = settings
        self.cache = cache
        self.engine = engine
        self.render = render
        self._insert = _CallInsert(engine.dialect)
        self._kept: dict[Any, _Kept] = {}
        self._lock = threading.Lock()
        # The calls of a batch, run in one go (db.GroupCommit.run_together).
        self.starts: Together[Any, NewCall, Started] = Together(self.start_calls)

    def _decide(
        self, directory: Directory, to_number: str, from_number: str, now: datetime
    ) -> _Kept:
        settings = self.settings()
        key = decision_key(directory, to_number, from_number, now)
        if key is not None:
            kept = self._kept.get(key)
            # A decision from an older snapshot is never used: it may route to the old plan.
            if kept is not None and kept.snapshot is directory and kept.settings is settings:
                return kept
        fresh = _Kept(directory, settings, decide(directory, settings, to_number, from_number, now))
        if key is not None:
            with self._lock:
                if len(self._kept) >= DECISIONS_KEPT:
                    self._kept.clear()
                self._kept[key] = fresh
        return fresh

    def _params(self, kept: _Kept) -> tuple[Any, ...]:
        params = kept.params.get(self._insert.dialect)
        if params is None:
            params = kept.params[self._insert.dialect] = self._insert.decision_params(kept.decision)
        return params

    def _body(self, kept: _Kept) -> bytes:
        if kept.body is None:
            kept.body = self.render(kept.settings, kept.decision.answer)
        return kept.body

    def start_call(
        self, cursor: Any, *, call_sid: str, from_number: str, to_number: str, now: datetime
    ) -> Started:
        """Route an incoming call and record it; a retry of the same CallSid answers the same.

        `cursor` is a DB-API cursor in the caller's transaction, which the caller commits. The
        common path is one statement on it: insert the row decided from the process's
        snapshot, returning the directory version; if the directory moved meanwhile, decide
        again. The rare reads (a stale snapshot, a retried webhook) use a connection of their
        own.
        """
        directory = self.cache.peek(now) or self._reload(now)
        for attempt in range(_ATTEMPTS):
            # The answer is ready before the INSERT: from the INSERT on, this transaction
            # holds SQLite's one write lock, and the caller commits as soon as this returns.
            kept = self._decide(directory, to_number, from_number, now)
            inserted = self._insert.run(
                cursor, call_sid, from_number, to_number, now, self._params(kept)
            )
            if inserted is None:
                return self._retried(call_sid, now)
            row_id, version = inserted
            # No version row at all: the snapshot was read for this very call (see peek).
            current = version == directory.version or (version is None and directory.version < 0)
            if current or attempt == _ATTEMPTS - 1:
                break
            # The directory changed since the snapshot was taken: undo, read it, decide again.
            cursor.execute(self._insert.undo_sql, (row_id,))
            directory = self._reload(now)
        return self._started(call_sid, to_number, kept)

    def _started(self, call_sid: str, to_number: str, kept: _Kept) -> Started:
        """A new call's answer, from the decision its row was written with."""
        if kept.decision.line is None:
            log.warning("call %s to unconfigured number %s", call_sid, phones.mask(to_number))
        return Started(kept.decision, self._body(kept))

    def start_calls(self, cursor: Any, calls: list[NewCall]) -> list[Started]:
        """`start_call` for each of `calls` (in their order), as one batch of a GroupCommit.

        On PostgreSQL one statement inserts every new call decided from the snapshot the
        directory is still at; a call whose snapshot was stale is decided again from a fresh
        one (at the last attempt, kept regardless, as `start_call` does); a CallSid stored
        already answers as a retried webhook. On SQLite each call runs as `start_call`. The
        same CallSid twice in one batch (a retry that came while the first waited) is stored
        once, and both hear its answer.
        """
        if not self._insert.batch_sql:
            each: dict[str, Started] = {}
            for call in calls:
                if call.call_sid not in each:
                    each[call.call_sid] = self.start_call(
                        cursor,
                        call_sid=call.call_sid,
                        from_number=call.from_number,
                        to_number=call.to_number,
                        now=call.now,
                    )
            return [each[call.call_sid] for call in calls]
        decided: dict[int, _Kept] = {}
        pending = list(range(len(calls)))
        retried: set[int] = set()
        for attempt in range(_ATTEMPTS):
            last = attempt == _ATTEMPTS - 1
            rows, versions = [], []
            for index in pending:
                call = calls[index]
                directory = self.cache.peek(call.now) or self._reload(call.now)
                kept = decided[index] = self._decide(
                    directory, call.to_number, call.from_number, call.now
                )
                rows.append(self._insert.row(call, self._params(kept)))
                versions.append(None if last else directory.version)
            inserted, version = self._insert.batch(cursor, rows, versions)
            stale = []
            for index, expected in zip(pending, versions, strict=True):
                if calls[index].call_sid in inserted:
                    continue
                if expected is None or expected == version:
                    retried.add(index)  # stored already: a retried webhook
                else:
                    stale.append(index)
            if not stale:
                break
            # The directory moved since those calls' snapshot: read it, decide them again.
            self._reload(calls[stale[0]].now)
            pending = stale
        started: dict[str, Started] = {}
        for index, call in enumerate(calls):
            if call.call_sid in started:
                continue  # the same CallSid twice in one batch: both hear the first's answer
            if index in retried:
                started[call.call_sid] = self._retried(call.call_sid, call.now)
                continue
            started[call.call_sid] = self._started(call.call_sid, call.to_number, decided[index])
        return [started[call.call_sid] for call in calls]

    def _retried(self, call_sid: str, now: datetime) -> Started:
        # A retried webhook: answer from the row written the first time; nothing more is
        # written, and nothing is kept.
        with Session(self.engine) as session:
            existing = find_call(session, call_sid)
            assert existing is not None
            directory = self.cache.get(session.connection(), now)
            answer = answer_for(directory, CallState.of(existing))
        return Started(Decision(None, {}, answer), self.render(self.settings(), answer))

    def _reload(self, now: datetime) -> Directory:
        with self.engine.connect() as connection:
            return self.cache.get(connection, now)
