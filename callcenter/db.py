"""The database: engine, sessions, and a UTC datetime type that survives SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, Integer, Text, create_engine, event
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


# SQLite ignores the BIGINT/INTEGER difference for rowid; PostgreSQL wants BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


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
        # Every (connection, driver connection, gate) handed out, so that close() reaches
        # those of threads that have ended.
        self._all: list[tuple[Any, Any, int | None]] = []
        url = engine.url
        self._gate_path = (
            f"{url.database}-writers"
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
            else None
        )

    def _pinned(self) -> tuple[Any, Any, int | None]:
        """This thread's (pool connection, driver connection, gate descriptor)."""
        pinned = getattr(self._local, "pinned", None)
        pid = os.getpid()
        if pinned is not None and pinned[0] == pid:
            return pinned[1]
        connection = self.engine.raw_connection()
        gate = None
        if self._gate_path is not None:
            gate = os.open(self._gate_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        found = (connection, connection.driver_connection, gate)
        with self._lock:
            self._all.append(found)
        self._local.pinned = (pid, found)
        return found

    def _discard(self, pinned: tuple[Any, Any, int | None]) -> None:
        self._local.pinned = None
        with self._lock:
            if pinned in self._all:
                self._all.remove(pinned)
        connection, _driver, gate = pinned
        if gate is not None:
            os.close(gate)
        # It is being thrown away: a second failure while closing it changes nothing.
        with contextlib.suppress(Exception):
            connection.invalidate()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a DB-API cursor in a transaction of this thread's connection; commit at the end.

        On any error the transaction is rolled back, and a connection that cannot even roll
        back, or whose driver raised, is replaced for the next use.
        """
        pinned = self._pinned()
        _connection, driver, gate = pinned
        if gate is not None:
            # SQLite's own busy handler sleeps 1 ms, then longer, whenever another process
            # holds the write lock; queueing on a file lock wakes the next writer at once.
            fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            cursor = driver.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            driver.commit()
        except BaseException as exc:
            try:
                driver.rollback()
            except Exception:
                self._discard(pinned)
                raise exc from None
            if isinstance(exc, self.engine.dialect.loaded_dbapi.Error):
                self._discard(pinned)
            raise
        finally:
            if gate is not None and self._local.pinned is not None:
                fcntl.flock(gate, fcntl.LOCK_UN)

    def close(self) -> None:
        """Return every pinned connection of this process to the pool."""
        with self._lock:
            connections, self._all = self._all, []
        for connection, _driver, gate in connections:
            if gate is not None:
                os.close(gate)
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
