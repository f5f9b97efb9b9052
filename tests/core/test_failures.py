"""Failures outside the happy path: one clear line, nothing written, no phone numbers leaked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from callcenter.audit.models import RetentionEntry
from callcenter.db import make_engine
from tests.cli import Result, run

Cli = Callable[..., Result]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> Cli:
    """Run the command with the test environment, some settings blanked (`without=`)."""

    def call(*args: str, without: tuple[str, ...] = ()) -> Result:
        return run(capsys, monkeypatch, {**env, **dict.fromkeys(without, "")}, *args)

    return call


def one_line(result: Result, *words: str) -> None:
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    "args",
    [("retention", "run"), ("recordings", "ingest"), ("recordings", "reconcile")],
)
def test_jobs_that_talk_to_twilio_refuse_to_start_without_the_account(
    cli: Cli, session: Session, args: tuple[str, ...]
) -> None:
    one_line(cli(*args, without=("TWILIO_AUTH_TOKEN",)), "TWILIO_AUTH_TOKEN")
    assert session.scalar(select(func.count()).select_from(RetentionEntry)) == 0


def test_dry_run_needs_no_twilio_account(cli: Cli) -> None:
    result = cli("retention", "run", "--dry-run", without=("TWILIO_AUTH_TOKEN",))
    assert result.code == 0, result.err


def test_no_schema_and_no_server_are_one_line_each(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no" / "such" / "x.db"
    one_line(
        run(capsys, monkeypatch, {**env, "DATABASE_URL": f"sqlite:///{missing}"}, "calls", "list"),
        "cannot open the database",
    )
    assert not (tmp_path / "no").exists()
    empty = tmp_path / "empty.db"
    one_line(
        run(capsys, monkeypatch, {**env, "DATABASE_URL": f"sqlite:///{empty}"}, "calls", "list"),
        "callcenter db upgrade",
    )
    one_line(
        run(
            capsys,
            monkeypatch,
            {**env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
            "staff",
            "list",
        ),
        "cannot open the database",
    )


def test_database_errors_do_not_carry_phone_numbers(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(DBAPIError) as caught, engine.begin() as connection:
        connection.execute(
            text("INSERT INTO no_such_table (phone) VALUES (:phone)"), {"phone": "+37129999999"}
        )
    assert "+37129999999" not in str(caught.value)
    engine.dispose()


def test_recording_callback_answers_503_when_the_database_is_down(
    runtime,
    twilio_post,  # type: ignore[no-untyped-def]
) -> None:
    from callcenter.db import make_sessionmaker
    from tests.conftest import ACCOUNT_SID

    runtime.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    runtime.sessions = make_sessionmaker(runtime.engine)
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + "1" * 32,
        "RecordingSid": "RE" + "1" * 32,
        "RecordingStatus": "completed",
        "RecordingStartTime": "Mon, 23 Nov 2026 10:00:00 +0000",
        "RecordingDuration": "30",
        "RecordingChannels": "2",
        "RecordingUrl": "https://api.twilio.com/x",
    }
    assert twilio_post("/twilio/recording-status", form).status_code == 503


def test_healthz_names_what_failed(runtime, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").json.items() >= {"database": "ok", "storage": "ok"}.items()
    runtime.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["storage"] == "ok"
    assert response.json["database"].startswith("error")
