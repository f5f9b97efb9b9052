"""`callcenter serve` is for development: it refuses what looks like production."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from callcenter.directory import service as directory
from tests.cli import run


def test_serve_refuses_a_public_address_that_is_not_loopback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    result = run(capsys, monkeypatch, env, "serve", "--no-demo", "--no-scheduler")
    assert result.code != 0
    line = result.err.strip().splitlines()[-1]
    assert "Traceback" not in result.err
    assert "PUBLIC_BASE_URL" in line and "--force" in line


def test_serve_refuses_a_database_with_real_staff(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        directory.add_staff(session, "mberzina", name="Marta Bērziņa", phone="+37120000009")
    local = {**env, "PUBLIC_BASE_URL": ""}
    result = run(capsys, monkeypatch, local, "serve", "--no-demo", "--no-scheduler")
    assert result.code != 0
    line = result.err.strip().splitlines()[-1]
    assert "Traceback" not in result.err
    assert "DATABASE_URL" in line and "--force" in line
