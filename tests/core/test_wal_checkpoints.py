"""The web process's SQLite WAL is checkpointed by a thread of its own, not in its commits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from callcenter import db
from callcenter.db import WriterGate, make_engine


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "CHECKPOINT_SECONDS", 0.05)


def test_the_web_engine_leaves_checkpoints_to_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "web.db"
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    with engine.begin() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    checkpoints = db._checkpoints_of(str(path), 0)
    before = checkpoints.runs
    time.sleep(0.2)
    # Only a process that writes runs the thread (gunicorn's master only reads).
    assert checkpoints.runs == before
    # Past SQLite's own threshold (1,000 pages) in one commit, which checkpoints none of them;
    # no write follows, so the WAL is not started over before the thread has copied it.
    with WriterGate(engine).held(), engine.begin() as connection:
        connection.execute(
            text("INSERT INTO t (body) VALUES (:body)"), [{"body": "x" * 4000}] * 1200
        )
    deadline = time.monotonic() + 5
    while checkpoints.runs <= before + 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoints.runs > before + 1
    assert checkpoints.last is not None
    busy, frames, copied = checkpoints.last
    # Everything written was copied back into the database file, with nobody blocked.
    assert busy == 0 and frames > 1000 and copied == frames
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1200
    engine.dispose()


def test_other_engines_keep_sqlite_s_own_checkpoints(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    engine.dispose()
