"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from callcenter import migrate
from callcenter.db import Base, make_engine


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_head_after_upgrade(engine: Engine) -> None:
    assert migrate.is_current(engine)
    migrate.upgrade(engine)  # running it again is harmless
    assert migrate.is_current(engine)


def test_retention_log_refuses_update_and_delete_in_the_database(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO retention_log (seq, at, event, actor, details, prev_hash, hash) "
                "VALUES (1, CURRENT_TIMESTAMP, 'sweep_started', 'test', '{}', 'x', 'y')"
            )
        )
    for statement in ("UPDATE retention_log SET event = 'deleted'", "DELETE FROM retention_log"):
        try:
            with engine.begin() as connection:
                connection.execute(text(statement))
        except DBAPIError as exc:
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{statement} was allowed")


def test_widening_the_caller_columns_keeps_the_rows_and_their_references(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO calls (call_sid, from_number, to_number, plan, step, after_hours,"
                " outcome, as_substitute, started_at, updated_at) VALUES ('CA1', '+37129111111',"
                " '+37167000002', '[]', 0, 0, 'answered', 0, CURRENT_TIMESTAMP,"
                " CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO call_events (call_id, dedupe_key, kind, leg_sid, payload,"
                " received_at) VALUES (1, 'k', 'status', 'CA1', '{}', CURRENT_TIMESTAMP)"
            )
        )
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM call_events")).scalar() == 1
        assert connection.execute(text("PRAGMA foreign_key_check")).fetchall() == []
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
