"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from callcenter import migrate
from callcenter.db import Base


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
