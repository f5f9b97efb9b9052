"""`callcenter users add|list|deactivate|token`."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.accounts import service as accounts
from callcenter.accounts.models import ApiToken, User
from callcenter.directory import service as directory
from tests.cli import run

PASSWORD = "a long enough password"


@pytest.fixture
def staffed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        directory.add_staff(session, "lozola", name="Līga Ozola", phone="+37120000002")


def test_add_list_token_deactivate(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    staffed: None,
    session: Session,
) -> None:
    args = ("users", "add", "liga", "--role", "staff", "--staff", "lozola", "--password-stdin")
    added = run(capsys, monkeypatch, env, *args, stdin=PASSWORD + "\n")
    assert added.code == 0, added.err
    listed = run(capsys, monkeypatch, env, "users", "list", "--json").json()
    assert listed[0] | {"created_at": None} == {
        "username": "liga",
        "role": "staff",
        "staff": "lozola",
        "active": True,
        "created_at": None,
    }
    user = session.scalars(select(User)).one()
    assert PASSWORD not in user.password_hash and accounts.verify_password(
        user.password_hash, PASSWORD
    )

    issued = run(capsys, monkeypatch, env, "users", "token", "liga")
    assert issued.code == 0
    token = issued.out.strip().splitlines()[-1].split()[-1]
    stored = session.scalars(select(ApiToken)).one()
    assert stored.token_hash == accounts.hash_token(token) and token not in stored.token_hash
    assert accounts.user_for_token(session, token) is not None

    gone = run(capsys, monkeypatch, env, "users", "deactivate", "liga")
    assert gone.code == 0
    session.expire_all()
    assert accounts.user_for_token(session, token) is None


@pytest.mark.parametrize(
    ("args", "stdin", "problem"),
    [
        (("users", "add", "liga", "--role", "staff", "--password-stdin"), PASSWORD, "--staff"),
        (("users", "add", "Bad Name", "--role", "admin", "--password-stdin"), PASSWORD, "username"),
        (("users", "add", "root", "--role", "admin", "--password-stdin"), "short", "at least"),
        (("users", "add", "root", "--role", "admin", "--password-stdin"), "", "no password"),
        (
            ("users", "add", "x1", "--role", "staff", "--staff", "nobody", "--password-stdin"),
            PASSWORD,
            "nobody",
        ),
        (("users", "add", "root", "--role", "king", "--password-stdin"), PASSWORD, "king"),
        (("users", "add", "root", "--role", "admin"), None, "--password-stdin"),
        (("users", "token", "nobody"), None, "no user"),
        (("users", "deactivate", "nobody"), None, "no user"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    staffed: None,
    session: Session,
    args: tuple[str, ...],
    stdin: str | None,
    problem: str,
) -> None:
    result = run(capsys, monkeypatch, env, *args, stdin=stdin)
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], result.err
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_a_username_is_added_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    args = ("users", "add", "root", "--role", "admin", "--password-stdin")
    assert run(capsys, monkeypatch, env, *args, stdin=PASSWORD).code == 0
    again = run(capsys, monkeypatch, env, *args, stdin=PASSWORD)
    assert again.code == 1 and "already exists" in again.err
