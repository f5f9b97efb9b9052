"""The database: engine, sessions, and a UTC datetime type that survives SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg import waiting as pg_waiting
from psycopg.adapt import AdaptersMap
from psycopg.conninfo import conninfo_attempts, conninfo_to_dict, make_conninfo
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

# How long a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long any process waits to connect to PostgreSQL (libpq counts whole seconds, at least 2).
CONNECT_TIMEOUT_SECONDS = 5
# No wait is cut shorter than this, so that a rollback after a timeout can still be sent.
_MIN_WAIT_SECONDS = 0.05


@dataclass(frozen=True)
class Bounds:
    """Limits on every database wait of an engine, for the routes a caller waits on.

    `seconds` bounds each wait of the client on the server (connecting, every statement, the
    pool, SQLite's writers' queue), and `deadline()` can shorten it for one request. The
    server-side timeouts end a statement cleanly (the connection stays usable) before the
    client's bound cuts it; the client's bound is what holds when the server never answers.
    """

    seconds: float
    statement_timeout_ms: int
    lock_timeout_ms: int


# psycopg's own "a wait ran out" (private, but the one thing its waits raise for it).
_WAIT_TIMEOUT: type[Exception] = pg_errors._WaitTimeout

_NOT_CONNINFO = ("autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory")

_deadline: ContextVar[float | None] = ContextVar("callcenter_db_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every database wait inside the block to end within `seconds` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    """When the running `deadline()` ends (time.monotonic()), or None outside one."""
    return _deadline.get()


def _remaining(bound: float | None) -> float | None:
    """The time a wait may take now: the bound, cut to the deadline if one is running."""
    at = _deadline.get()
    if at is None:
        return bound
    left = max(at - time.monotonic(), _MIN_WAIT_SECONDS)
    return left if bound is None else min(bound, left)


class DatabaseTimeout(Exception):
    """The database did not answer within the bound of the route that waited."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait on the server ends within its bound.

    psycopg waits without limit for a server that accepted the connection and never answers,
    and libpq's `connect_timeout` counts whole seconds, two at least: a caller would hear
    silence. Here connecting and each wait end within `bound_seconds` (or the running
    `deadline()`); a connection cut off mid-protocol is closed, so it is never used again.
    """

    bound_seconds: float | None = None

    @classmethod
    def connect_within(cls, seconds: float, **params: Any) -> BoundedConnection:
        """Connect, trying each address psycopg would, all within `seconds`."""
        # Not `connect()`: psycopg's rounds the timeout to whole seconds, two at least.
        at = time.monotonic() + (_remaining(seconds) or seconds)
        # What psycopg's connect() takes besides the connection string (SQLAlchemy passes
        # `context`, its adapters); applied below as connect() applies them.
        extra = {name: params.pop(name) for name in _NOT_CONNINFO if name in params}
        failures: list[Exception] = []
        for attempt in conninfo_attempts(conninfo_to_dict("", **params)):
            left = at - time.monotonic()
            if left <= 0:
                break
            try:
                connection = pg_waiting.wait_conn(
                    cls._connect_gen(make_conninfo("", **attempt)), interval=0.05, timeout=left
                )
            except pg_errors.Error as exc:  # _WaitTimeout is one (an OperationalError)
                failures.append(exc)
                continue
            connection.bound_seconds = seconds
            if extra.get("context") is not None:
                connection._adapters = AdaptersMap(extra["context"].adapters)
            if extra.get("autocommit"):
                connection.autocommit = True
            for name in ("row_factory", "cursor_factory", "prepare_threshold"):
                if name in extra:
                    setattr(connection, name, extra[name])
            return connection
        if failures and not isinstance(failures[-1], _WAIT_TIMEOUT):
            raise failures[-1]  # refused, a wrong password: said as psycopg says it
        raise pg_errors.ConnectionTimeout(f"no connection to the database within {seconds:.2f} s")

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        bound = _remaining(self.bound_seconds)
        if bound is not None and (timeout is None or timeout > bound):
            timeout = bound
        try:
            return super().wait(gen, interval=min(interval, timeout or interval), timeout=timeout)
        except _WAIT_TIMEOUT:
            # Cut off mid-protocol: the connection's state is unknown, so it is not kept.
            self.close()
            raise pg_errors.OperationalError(
                f"the database did not answer within {timeout:.2f} s"
            ) from None


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


def _sqlite_pragmas(busy_timeout_ms: int, checkpoints: WalCheckpoints | None = None) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the one writer; NORMAL sync is durable across a process
        # crash and costs no fsync per commit, which keeps a webhook's write in the sub-ms range.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if checkpoints is not None:
            # The WAL is copied back into the database by this process's checkpointer thread,
            # not by whichever commit crosses SQLite's 1,000 pages (see WalCheckpoints).
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return on_connect


# How often the web process copies the WAL back into the database file.
CHECKPOINT_SECONDS = 0.5


class WalCheckpoints:
    """A thread of this process that checkpoints a SQLite database's WAL, off the write path.

    SQLite checkpoints in the commit that takes the WAL past 1,000 pages: that writer copies
    the pages back and syncs the database file while the webhook it serves waits, and every
    write queued behind it waits too (the voice benchmark ran 20% faster without). The web
    process's connections turn that off (`wal_autocheckpoint=0`) and this thread runs a
    PASSIVE checkpoint every CHECKPOINT_SECONDS on a connection of its own: it copies what no
    reader still needs and blocks no reader and no writer. Other processes (commands, the
    scheduler) keep SQLite's own checkpoints. A failed checkpoint is logged and tried again;
    the thread starts in each process at its first write (`WriterGate.held`): not in
    gunicorn's master, which reads only, so no thread of it is running when it forks.
    """

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._pid: int | None = None
        # The last checkpoint's (busy, frames in the WAL, frames checkpointed), for the tests.
        self.last: tuple[int, int, int] | None = None
        self.runs = 0

    def ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="wal-checkpoints", daemon=True).start()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        failing = False
        while True:
            time.sleep(CHECKPOINT_SECONDS)
            try:
                if connection is None:
                    connection = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000)
                row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.last = (int(row[0]), int(row[1]), int(row[2]))
                self.runs += 1
                if failing:
                    log.info("WAL checkpoints of %s work again", self.path)
                failing = False
            except sqlite3.Error as exc:
                if not failing:
                    log.warning("WAL checkpoint of %s failed (trying again): %s", self.path, exc)
                failing = True
                if connection is not None:
                    with contextlib.suppress(sqlite3.Error):
                        connection.close()
                connection = None


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection the server has closed (the pool opens another).

    An idle connection's socket has nothing to read unless the server has written to it:
    its last words on closing it (a restart, an administrator's terminate, an idle timeout)
    and the close itself. A poll with no wait sees that without a round trip, where
    `pool_pre_ping` costs one for every checkout, that is for every webhook.
    """
    try:
        poll = select.poll()  # not select.select: it refuses descriptors past 1023
        poll.register(dbapi_connection.pgconn.socket, select.POLLIN)
        readable = poll.poll(0)
    except (psycopg.Error, OSError, ValueError):
        raise DisconnectionError("the connection is closed") from None
    if readable:
        raise DisconnectionError("the server closed the connection")


_CHECKPOINTS: dict[str, WalCheckpoints] = {}
_CHECKPOINTS_LOCK = threading.Lock()


def _checkpoints_of(database: str, busy_timeout_ms: int) -> WalCheckpoints:
    """One checkpointer per database file in a process, however many engines use it."""
    path = str(Path(database).resolve())
    with _CHECKPOINTS_LOCK:
        found = _CHECKPOINTS.get(path)
        if found is None:
            found = _CHECKPOINTS[path] = WalCheckpoints(path, busy_timeout_ms)
        return found


def make_engine(
    url: str,
    *,
    create_directory: bool = False,
    bounds: Bounds | None = None,
    background_checkpoints: bool = False,
    **kwargs: Any,
) -> Engine:
    """Create the engine for a URL, with SQLite set up for concurrent use.

    A SQLite file's directory is created only when asked (`db upgrade`, `serve`): any other
    command pointed at a wrong path should fail, not leave new directories behind. With
    `bounds`, every wait on the database ends within them (see `Bounds`). With
    `background_checkpoints` (the web process), a SQLite file's WAL is checkpointed by a thread
    of the process instead of in commits (WalCheckpoints).
    """
    parsed = make_url(url)
    # Statement parameters hold phone numbers: keep them out of exception texts and logs.
    kwargs.setdefault("hide_parameters", True)
    if bounds is not None:
        # A pool that is used up fails at once rather than after SQLAlchemy's 30 s.
        kwargs.setdefault("pool_timeout", bounds.seconds)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if create_directory and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = SQLITE_BUSY_TIMEOUT_MS if bounds is None else int(bounds.seconds * 1000)
        engine = create_engine(url, connect_args={"timeout": busy_ms / 1000}, **kwargs)
        checkpoints = (
            _checkpoints_of(database, busy_ms)
            if background_checkpoints and database and database != ":memory:"
            else None
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_ms, checkpoints))
        return engine
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if parsed.get_backend_name() == "postgresql" and not kwargs.get("pool_pre_ping"):
        event.listen(engine, "checkout", _closed_by_server)
    if bounds is not None and parsed.get_backend_name() == "postgresql":
        options = (
            f"-c statement_timeout={bounds.statement_timeout_ms} "
            f"-c lock_timeout={bounds.lock_timeout_ms}"
        )

        @event.listens_for(engine, "do_connect")
        def connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> Any:
            params = {**cparams, "options": f"{cparams.get('options', '')} {options}".strip()}
            params.pop("connect_timeout", None)
            return BoundedConnection.connect_within(bounds.seconds, **params)

    return engine


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


class WriterGate:
    """SQLite's writers queued on a file lock beside the database (`<database>-writers`).

    SQLite's own busy handler sleeps 1 ms, then longer, whenever another writer holds the write
    lock, and a transaction that read before it wrote fails at once instead of waiting; queueing
    on a file lock wakes the next writer at once, across threads and processes (each thread
    opens the file itself: flock locks belong to an open file). Under a running `deadline()`
    the queue is bounded by time. On PostgreSQL there is no gate: it queues writers itself.
    """

    def __init__(self, engine: Engine) -> None:
        url = engine.url
        self.path = (
            f"{url.database}-writers"
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
            else None
        )
        self._local = threading.local()
        # This process's writers under a deadline queue here first (see _enter).
        self._writers = threading.Lock()
        # The web process's WAL checkpointer, when its engine leaves checkpoints to one.
        self._checkpoints = (
            _CHECKPOINTS.get(str(Path(url.database).resolve()))
            if self.path is not None and url.database
            else None
        )

    def _descriptor(self) -> int:
        assert self.path is not None
        found = getattr(self._local, "fd", None)
        pid = os.getpid()
        if found is not None and found[0] == pid:
            return int(found[1])
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._local.fd = (pid, fd)
        return fd

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the writers' lock for the block (nothing on PostgreSQL)."""
        if self.path is None:
            yield
            return
        if self._checkpoints is not None:
            self._checkpoints.ensure_running()
        fd = self._descriptor()
        queued = self._enter(fd)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            if queued:
                self._writers.release()

    def _enter(self, gate: int) -> bool:
        """Take the file lock; return whether this process's writers' lock is held too."""
        if _deadline.get() is None:
            fcntl.flock(gate, fcntl.LOCK_EX)
            return False
        if not self._writers.acquire(timeout=_remaining(None) or 0):
            raise DatabaseTimeout("the queue of database writers did not move in time")
        # Another process's writer may let go at any moment: look often (a syscall each).
        pause = 0.0002
        try:
            while True:
                try:
                    fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    at = _deadline.get()
                    if at is not None and time.monotonic() >= at:
                        raise DatabaseTimeout(
                            "another process kept the database writers' lock too long"
                        ) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.001)
        except BaseException:
            self._writers.release()
            raise


@contextmanager
def write_transaction(factory: sessionmaker[Session], gate: WriterGate) -> Iterator[Session]:
    """One unit of work that writes: in the writers' queue, the write lock taken at its start.

    On SQLite the transaction begins IMMEDIATE, so that reading first and writing later never
    meets another writer's commit in between (which SQLite answers with "database is locked"
    at once, without waiting). Commit on success, roll back on any error.
    """
    with factory() as session:
        transaction = session.begin()
        # The session and its pooled connection are made before the writers' lock is taken
        # and given back after it is let go: it is held from BEGIN IMMEDIATE to COMMIT only,
        # while the other processes' writers wait for it.
        connection = session.connection()
        with gate.held(), transaction:
            if gate.path is not None:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield session


class PinnedConnections:
    """The process's DB-API connection, checked out of the engine's pool once and kept.

    For the write every call makes: checking a connection out of the pool and back in (with
    the pool's reset) costs more than the INSERT and COMMIT themselves (the voice benchmark
    measures it). One thread at a time uses it: the web process's writes run one batch at a
    time (GroupCommit), and a connection per thread would take WEB_THREADS connections of the
    pool (past its 15, a call would wait for one in vain). A connection that failed, or that
    the server closed, is thrown away, so the next use gets a fresh one; a connection never
    crosses a fork (gunicorn --preload forks after the app is built). Writers queue on the
    engine's WriterGate.
    """

    def __init__(self, engine: Engine, gate: WriterGate | None = None) -> None:
        self.engine = engine
        self.gate = gate or WriterGate(engine)
        # (pid, (pool connection, driver connection)), or None.
        self._kept: tuple[int, tuple[Any, Any]] | None = None
        self._use = threading.Lock()

    def _pinned(self) -> tuple[Any, Any]:
        """The kept (pool connection, driver connection); the caller holds `_use`."""
        if self._kept is not None and self._kept[0] == os.getpid():
            found = self._kept[1]
            if self.engine.dialect.name != "postgresql":
                return found
            try:
                _closed_by_server(found[1], None, None)
                return found
            except DisconnectionError:
                # Closed by the server while kept (a restart): the call gets a fresh one.
                self._discard(found)
        connection = self.engine.raw_connection()
        found = (connection, connection.driver_connection)
        self._kept = (os.getpid(), found)
        return found

    def _discard(self, pinned: tuple[Any, Any]) -> None:
        self._kept = None
        connection, _driver = pinned
        # It is being thrown away: a second failure while closing it changes nothing.
        with contextlib.suppress(Exception):
            connection.invalidate()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Yield a DB-API cursor in a transaction of the kept connection; commit at the end.

        On any error the transaction is rolled back, and a connection that cannot even roll
        back, or whose driver raised, is replaced for the next use.
        """
        with self._use, self.gate.held():
            pinned = self._pinned()
            _connection, driver = pinned
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

    def close(self) -> None:
        """Return the kept connection of this process to the pool."""
        with self._use:
            kept, self._kept = self._kept, None
        if kept is not None and kept[0] == os.getpid() and kept[1][0].is_valid:
            kept[1][0].close()


class _Compiled:
    """One statement as one dialect runs it: SQL text, parameter order and value processors."""

    __slots__ = ("binds", "fixed", "names", "positional", "results", "returns_rows", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys)))
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise TypeError("a statement with Python-side defaults is not prepared")
        self.sql = compiled.string
        self.positional = compiled.positional
        self.names = tuple(compiled.positiontup or ()) if compiled.positional else ()
        self.binds = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        # The statement's own values (`.values(step=0)`, say): bound, processed, once.
        self.fixed = {
            name: self._processed(name, bind.effective_value)
            for name, bind in compiled.binds.items()
            if name not in keys and not bind.required
        }
        self.results = _result_processors(statement, dialect)
        # Known here, not asked of the cursor: psycopg builds `description` anew on each read.
        self.returns_rows = bool(self.results)

    def _processed(self, name: str, value: Any) -> Any:
        process = self.binds.get(name)
        return value if process is None or value is None else process(value)

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        processed = dict(self.fixed)
        for name, value in values.items():
            processed[name] = self._processed(name, value)
        if self.positional:
            return tuple(processed[name] for name in self.names)
        return processed

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return _processed_row(self.results, raw)


def _result_processors(statement: ClauseElement, dialect: Dialect) -> tuple[Any, ...]:
    """The result processors of the statement's columns on `dialect` (None: taken as is)."""
    columns = getattr(statement, "exported_columns", ())
    return tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )


def _processed_row(processors: tuple[Any, ...], raw: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        value if process is None or value is None else process(value)
        for process, value in zip(processors, raw, strict=True)
    )


_CONNECTION = "callcenter.connection"


def _connection_of(session: Session) -> Connection:
    """The session's connection in its current transaction, kept for the transaction's life.

    `Session.connection()` walks the session's transaction state on every call; an event runs
    four statements, so the connection is looked up once per transaction.
    """
    transaction = session.get_transaction()
    kept = session.info.get(_CONNECTION)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return cast(Connection, kept[1])
    connection = session.connection()
    session.info[_CONNECTION] = (session.get_transaction(), connection)
    return connection


class Prepared:
    """A Core statement compiled once per dialect and run on the session's DB-API cursor.

    For the statements every status callback runs: SQLAlchemy's execution machinery (compiled
    cache lookup, execution context, result set-up) costs more than the database's own work on
    them (the webhook benchmarks measure it). The statement runs in the session's transaction,
    on its connection; parameters go through the bound types' own bind processors and results
    through the columns' result processors, so values are written and read as SQLAlchemy would.
    A driver's error is raised as SQLAlchemy's DBAPIError, as `Connection.execute` raises it.
    A statement with Python-side defaults is refused (its defaults would not be computed).
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        self._results: dict[str, tuple[Any, ...]] = {}

    def rows(self, session: Session, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement with `values`; return its rows (none for a DML without RETURNING)."""
        connection = _connection_of(session)
        dialect = connection.dialect
        keys = tuple(values)
        compiled = self._compiled.get((dialect.name, keys))
        if compiled is None:
            compiled = self._compiled.setdefault(
                (dialect.name, keys), _Compiled(self.statement, dialect, keys)
            )
        parameters = compiled.parameters(values)
        driver = connection.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            cursor.execute(compiled.sql, parameters)
            raw = cursor.fetchall() if compiled.returns_rows else []
        except dialect.loaded_dbapi.Error as exc:
            invalidated = dialect.is_disconnect(exc, driver, cursor)
            if invalidated:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                compiled.sql,
                parameters,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=invalidated,
                dialect=dialect,
            ) from exc
        finally:
            cursor.close()
        return [compiled.row(row) for row in raw]

    def scalar(self, session: Session, values: dict[str, Any]) -> Any:
        """The first column of the first row, or None when there is no row."""
        found = self.rows(session, values)
        return found[0][0] if found else None

    def read(self, session: Session, raw: Sequence[Any]) -> tuple[Any, ...]:
        """Values of this statement's columns got another way (a JSON array of them, say),
        read as its own rows are: each through its column's result processor."""
        dialect = session.get_bind().dialect
        processors = self._results.get(dialect.name)
        if processors is None:
            processors = self._results.setdefault(
                dialect.name, _result_processors(self.statement, dialect)
            )
        return _processed_row(processors, raw)


def recordset_columns(table: Any, names: Sequence[str], dialect: Dialect) -> str:
    """The column definitions of `json_to_recordset(...) AS r(...)` (PostgreSQL) for `names`
    of `table`, each of the table's own type, and `n`, each record's place (json_records)."""
    types = (f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in names)
    return ", ".join((*types, "n INTEGER"))


def json_records(records: Iterable[dict[str, Any]]) -> str:
    """Rows for one `json_to_recordset` parameter: a JSON array of the records, values as
    bound (a datetime in ISO form), each with its place in the array as `n`, so that a
    statement can keep their order (`ORDER BY r.n`). One string where an array per column
    cost psycopg a dump per element."""
    return json.dumps(
        [
            {
                **{
                    name: value.isoformat() if isinstance(value, datetime) else value
                    for name, value in record.items()
                },
                "n": number,
            }
            for number, record in enumerate(records)
        ],
        ensure_ascii=False,
    )


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = (
        session_or_engine.get_bind()
        if isinstance(session_or_engine, Session)
        else session_or_engine
    )
    return bind.dialect.name == "postgresql"


W = TypeVar("W")
R = TypeVar("R")

# How many writes one commit carries at most (a handful, in practice: the threads waiting).
GROUP_COMMIT_MAX = 32


A = TypeVar("A")


@dataclass(frozen=True, eq=False)
class Together(Generic[W, A, R]):
    """Writes of one kind that a batch runs in one go: `run(transaction, args)` gives one
    result per argument, in their order (a batch's status events, say: a few statements for
    all of them instead of a few for each). Alone, a write runs as `run(transaction, [arg])`.
    """

    run: Callable[[W, list[A]], list[R]]


class _Queued(Generic[W, R]):
    """One thread's write, waiting in a GroupCommit until a commit carries it."""

    __slots__ = (
        "arg", "error", "finished", "key", "result", "state", "together", "woken", "work",
    )  # fmt: skip

    QUEUED, LEAD, TAKEN, DONE = range(4)

    def __init__(
        self,
        work: Callable[[W], R],
        key: str,
        together: Together[W, Any, R] | None = None,
        arg: Any = None,
    ) -> None:
        self.work = work
        self.key = key
        self.together = together
        self.arg = arg
        self.state = self.QUEUED
        # A bare lock, held from the start: waking releases it, waiting acquires it. One futex
        # each way, where an Event's wait builds a Condition and a waiter lock every time (the
        # benchmark's profile had Event and Condition at a fifth of the writers' GIL time).
        self.woken = threading.Lock()
        self.woken.acquire()
        self.result: R | None = None
        self.error: BaseException | None = None
        # Set with `result` or `error`: a write left without either was never committed.
        self.finished = False

    def wake(self) -> None:
        """Let the waiting thread look at its state again (the GroupCommit's lock is held)."""
        if self.woken.locked():
            self.woken.release()

    def succeeded(self, result: R) -> None:
        self.result, self.finished = result, True

    def failed(self, error: BaseException) -> None:
        self.error, self.finished = error, True


# PostgreSQL's refusals that concern one write's rows, not the database: a row lock not
# granted in time, a deadlock, a serialization failure. The batch's other writes run again.
_ONE_WRITES = ("55P03", "40P01", "40001")


def _the_database(exc: BaseException) -> bool:
    """Whether a failure is the database's (unreachable, too slow, locked), not one write's."""
    if getattr(exc, "sqlstate", None) in _ONE_WRITES:
        return False
    if isinstance(exc, DatabaseTimeout | psycopg.OperationalError | sqlite3.OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or (exc.orig is not None and _the_database(exc.orig))
    return False


def _out_of_time() -> bool:
    at = _deadline.get()
    return at is not None and time.monotonic() >= at


def _work(transaction: Any, batch: list[_Queued[Any, Any]]) -> list[Any]:
    """Run a batch's writes in its order; writes of one `Together` all at the first of them."""
    kinds: dict[Together[Any, Any, Any], list[int]] = {}
    for index, item in enumerate(batch):
        if item.together is not None:
            kinds.setdefault(item.together, []).append(index)
    results: list[Any] = [None] * len(batch)
    for index, item in enumerate(batch):
        if item.together is None:
            results[index] = item.work(transaction)
        elif kinds[item.together][0] == index:
            indexes = kinds[item.together]
            found = item.together.run(transaction, [batch[i].arg for i in indexes])
            for i, result in zip(indexes, found, strict=True):
                results[i] = result
    return results


class GroupCommit(Generic[W]):
    """The writes of this process's threads committed together: one transaction, one commit.

    On SQLite every write takes the one write lock (WriterGate, across processes) and each
    commit writes the WAL; on PostgreSQL each commit is a round trip and a WAL flush. Threads
    that write at once queue here; the first becomes the leader, begins a transaction of its
    own (`begin()`), takes every write queued by then (those that queued while it waited for
    SQLite's write lock or a connection too), runs them one after the other, commits once,
    and hands each its result. No write is answered before the commit that carries it has
    succeeded: nothing is acknowledged that a crash could lose. Writes must be work on the
    database alone (they may run again): a write that raises rolls the batch back, and each
    of that batch's writes then runs in a transaction of its own, so that one bad write fails
    only its own request.

    Under a running `deadline()` a write still queued when its time is up leaves the queue
    (DatabaseTimeout); the leader is the oldest write, so its deadline bounds the batch's
    waits before anyone else's runs out.

    Writes of one kind that can run in one go (`Together`, `run_together`: a batch's status
    events, say, a few statements for all of them) are run together where the first of them
    falls in the batch's order; alone (a batch that failed) each runs as a list of one.

    On PostgreSQL a batch holds the row locks of every call in it until its commit; its writes
    run in the order of their keys (the call's CallSid), so two processes' batches take the
    locks of the calls they share in the same order and never wait for each other in a
    circle (unordered, the benchmark saw deadlocks, each a second's wait and a retry).
    """

    def __init__(self, begin: Callable[[], AbstractContextManager[W]]) -> None:
        self._begin = begin
        self._lock = threading.Lock()
        self._queue: deque[_Queued[W, Any]] = deque()
        self._leading = False

    def run(self, work: Callable[[W], R], *, key: str = "") -> R:
        """Run `work(transaction)` in a transaction that has committed when this returns.

        `key`: the call the write is about (its CallSid). A batch runs its writes in the order
        of their keys, so that two batches (two processes) take the row locks of the calls
        they share in the same order, and never wait for each other in a circle.
        """
        return self._run(_Queued(work, key))

    def run_together(self, together: Together[W, A, R], arg: A, *, key: str = "") -> R:
        """Run `together.run(transaction, [... arg ...])` with the batch's other writes of the
        same kind, in a transaction that has committed when this returns; as `run` otherwise.

        The batch runs them where the first of them falls in the order of keys, so `run` must
        take the row locks of all its writes in that order too.
        """
        return self._run(
            _Queued(lambda transaction: together.run(transaction, [arg])[0], key, together, arg)
        )

    def _run(self, item: _Queued[W, R]) -> R:
        with self._lock:
            if not self._leading:
                self._leading = True
                item.state = _Queued.LEAD
            else:
                self._queue.append(item)
        while item.state != _Queued.LEAD:
            at = _deadline.get()
            # Taken into a batch: wait for its end, which the leader's deadline (the oldest)
            # bounds; the result is this write's, committed or not, and must be heard.
            taken = item.state == _Queued.TAKEN
            if at is None or taken:
                item.woken.acquire()
            else:
                item.woken.acquire(timeout=max(at - time.monotonic(), 0))
            with self._lock:
                if item.state == _Queued.DONE:
                    break
                if item.state == _Queued.QUEUED and at is not None and time.monotonic() >= at:
                    self._queue.remove(item)
                    raise DatabaseTimeout("the queue of database writers did not move in time")
                if item.state == _Queued.LEAD and at is not None and time.monotonic() >= at:
                    # Out of time before leading: the next write leads instead.
                    self._hand_on()
                    raise DatabaseTimeout("the queue of database writers did not move in time")
        if item.state == _Queued.LEAD:
            self._lead(item)
        if item.error is not None:
            raise item.error
        return cast(R, item.result)

    def _hand_on(self) -> None:
        """Make the oldest queued write the next leader (the caller holds the lock)."""
        if self._queue:
            head = self._queue.popleft()
            head.state = _Queued.LEAD
            head.wake()
        else:
            self._leading = False

    def _lead(self, own: _Queued[W, Any]) -> None:
        batch = [own]
        try:
            self._commit(batch)
        finally:
            with self._lock:
                for item in batch:
                    if not item.finished:
                        # The leader was stopped mid-batch (its worker shutting down, say).
                        item.failed(DatabaseTimeout("the write was stopped before its commit"))
                    item.state = _Queued.DONE
                    item.wake()
                self._hand_on()

    def _take(self, batch: list[_Queued[W, Any]]) -> None:
        """The queued writes join `batch`, which then runs in the order of its keys."""
        with self._lock:
            while self._queue and len(batch) < GROUP_COMMIT_MAX:
                taken = self._queue.popleft()
                taken.state = _Queued.TAKEN
                batch.append(taken)
        batch.sort(key=lambda item: item.key)

    def _commit(self, batch: list[_Queued[W, Any]]) -> None:
        began = False
        try:
            with self._begin() as transaction:
                # Taken once the transaction has begun: the writes that queued while the
                # leader waited for it (SQLite's write lock, a pooled connection) join it.
                began = True
                self._take(batch)
                results = _work(transaction, batch)
        except Exception as exc:
            if _the_database(exc) or _out_of_time():
                # The database failed, not one write: every write of the batch hears so, from
                # this one attempt. If the transaction never began, that is the writes that
                # queued while the leader waited for it; any queued later get their own try.
                if not began:
                    self._take(batch)
                for item in batch:
                    item.failed(exc)
                return
            if len(batch) == 1:
                batch[0].failed(exc)
                return
            # One write raised: each is tried again on its own, below.
        else:
            for item, result in zip(batch, results, strict=True):
                item.succeeded(result)
            return
        for item in batch:
            if _out_of_time():
                item.failed(DatabaseTimeout("no time was left to write this alone"))
                continue
            try:
                with self._begin() as transaction:
                    result = item.work(transaction)
            except Exception as exc:  # handed to the thread whose write it was
                item.failed(exc)
            else:
                item.succeeded(result)
