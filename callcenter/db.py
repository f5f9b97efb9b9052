"""The database: engine, sessions, and a UTC datetime type that survives SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, Text, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# How long a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so the value is stored as naive
    UTC and given its zone back on the way out. Naive datetimes are refused on the way in: a
    naive value is a bug about which zone was meant.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """JSON kept as text, identical on both databases (and byte-stable for hashing)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; NORMAL sync is durable across a process crash
    # and costs no fsync per commit, which is what keeps a webhook's write in the sub-ms range.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, *, create_directory: bool = False, **kwargs: Any) -> Engine:
    """Create the engine for a URL, with SQLite set up for concurrent use.

    A SQLite file's directory is created only when asked (`db upgrade`, `serve`): any other
    command pointed at a wrong path should fail, not leave new directories behind.
    """
    parsed = make_url(url)
    # Statement parameters hold phone numbers: keep them out of exception texts and logs.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if create_directory and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite database file (for commands that create the schema)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Run one unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


class PinnedConnections:
    """One DB-API connection per thread, checked out of the engine's pool once and kept.

    For the write every call makes: checking a connection out of the pool and back in (with
    the pool's reset) costs more than the INSERT and COMMIT themselves (the voice benchmark
    measures it). A connection that failed is thrown away, so the next use gets a fresh one;
    a connection never crosses a fork (gunicorn --preload forks after the app is built).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        # Every connection handed out, so close() reaches those of threads that have ended.
        self._all: list[Any] = []
        url = engine.url
        self._gate_path = (
            f"{url.database}-writers"
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
            else None
        )
        self._gate_fd: tuple[int, int] | None = None

    def _connection(self) -> Any:
        pinned = getattr(self._local, "pinned", None)
        if pinned is not None and pinned[0] == os.getpid():
            return pinned[1]
        connection = self.engine.raw_connection()
        with self._lock:
            self._all.append(connection)
        self._local.pinned = (os.getpid(), connection)
        return connection

    def _discard(self, connection: Any) -> None:
        self._local.pinned = None
        with self._lock:
            if connection in self._all:
                self._all.remove(connection)
        try:
            connection.invalidate()
        except Exception:  # noqa: S110 - it is being thrown away; a second failure changes nothing
            pass

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a DB-API cursor in a transaction of this thread's connection; commit at the end.

        On any error the transaction is rolled back, and a connection that cannot even roll
        back, or whose driver raised, is replaced for the next use.
        """
        connection = self._connection()
        gate = self._gate()
        if gate is not None:
            fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            connection.commit()
        except BaseException as exc:
            try:
                connection.rollback()
            except Exception:
                self._discard(connection)
                raise exc from None
            if isinstance(exc, self.engine.dialect.loaded_dbapi.Error):
                self._discard(connection)
            raise
        finally:
            if gate is not None:
                fcntl.flock(gate, fcntl.LOCK_UN)

    def _gate(self) -> int | None:
        path = self._gate_path
        if path is None:
            return None
        if self._gate_fd is None or self._gate_fd[0] != os.getpid():
            self._gate_fd = (os.getpid(), os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        return self._gate_fd[1]

    def close(self) -> None:
        """Return every pinned connection of this process to the pool."""
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            if connection.is_valid:
                connection.close()
        self._local = threading.local()


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "postgresql"
