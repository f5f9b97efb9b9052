"""The web process's kept connection for the call row: commits, rollbacks, replacement."""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest
from sqlalchemy import Engine, text

from callcenter.db import PinnedConnections
from tests.conftest import TEST_DATABASE_URL


def version(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT version FROM directory_version")).scalar_one())


def bump(cursor: object) -> None:
    cursor.execute("UPDATE directory_version SET version = version + 1")  # type: ignore[attr-defined]


def test_a_transaction_commits_and_the_connection_is_kept(engine: Engine) -> None:
    pinned = PinnedConnections(engine)
    before = version(engine)
    with pinned.transaction() as cursor:
        bump(cursor)
        first = cursor.connection
    with pinned.transaction() as cursor:
        bump(cursor)
        assert cursor.connection is first
    assert version(engine) == before + 2
    pinned.close()


def test_an_error_rolls_back_and_is_raised(engine: Engine) -> None:
    pinned = PinnedConnections(engine)
    before = version(engine)
    with pytest.raises(RuntimeError, match="no"), pinned.transaction() as cursor:
        bump(cursor)
        raise RuntimeError("no")
    assert version(engine) == before
    # Not the driver's fault: the connection stays.
    with pinned.transaction() as cursor:
        bump(cursor)
    assert version(engine) == before + 1
    pinned.close()


def test_a_driver_error_replaces_the_connection(engine: Engine) -> None:
    pinned = PinnedConnections(engine)
    with pinned.transaction() as cursor:
        first = cursor.connection
    driver_error = engine.dialect.loaded_dbapi.Error
    with pytest.raises(driver_error), pinned.transaction() as cursor:
        cursor.execute("SELECT no_such_column FROM directory_version")
    before = version(engine)
    with pinned.transaction() as cursor:
        assert cursor.connection is not first
        bump(cursor)
    assert version(engine) == before + 1
    pinned.close()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_the_process_connection_serves_more_threads_than_the_pool_holds(engine: Engine) -> None:
    # The web process's kept connection: 20 threads, more than the pool's
    # 15, all write through one connection, one at a time, and the pool keeps the rest.
    pinned = PinnedConnections(engine)
    before = version(engine)
    seen: list[object] = []
    inside: list[int] = []
    most: list[int] = [0]

    def work() -> None:
        with pinned.transaction() as cursor:
            inside.append(1)
            most[0] = max(most[0], len(inside))
            bump(cursor)
            seen.append(cursor.connection)
            time.sleep(0.002)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 20 and len({id(connection) for connection in seen}) == 1
    assert most[0] == 1
    assert version(engine) == before + 20
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    pinned.close()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_sqlite_writers_hold_the_file_lock_for_the_transaction_only(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the writers' file lock is SQLite's; PostgreSQL queues writers itself")
    pinned = PinnedConnections(engine)
    other = os.open(f"{engine.url.database}-writers", os.O_RDWR | os.O_CREAT)
    try:
        with pinned.transaction() as cursor:
            bump(cursor)
            # Another process's writer would wait here (the kernel wakes it on release).
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)
        pinned.close()


def _terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        other.commit()


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL (PostgreSQL)")
def test_a_connection_the_server_closed_is_replaced_before_use(engine: Engine) -> None:
    # What a PostgreSQL restart does to kept and pooled connections: the next use gets a
    # fresh one, without the round trip of a ping on every use.
    pinned = PinnedConnections(engine)
    with pinned.transaction() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        kept = cursor.fetchone()[0]
    _terminate(engine, kept)
    time.sleep(0.2)
    with pinned.transaction() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != kept
    pinned.close()

    with engine.connect() as connection:
        pooled = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    _terminate(engine, pooled)
    time.sleep(0.2)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != pooled
