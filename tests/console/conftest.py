"""Console fixtures: a small directory, one user per role, signed-in clients and API tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from callcenter.accounts import service as accounts
from callcenter.audit import log as retention_log
from callcenter.calls.models import Call
from callcenter.db import transaction
from callcenter.directory import service as directory
from callcenter.recordings.models import Recording
from callcenter.recordings.policy import due_at
from callcenter.runtime import Runtime
from tests.calls import conftest as calls_fixtures
from tests.calls.conftest import ANDRIS, DEPARTMENT, DIRECT, JANIS, LIGA, Clock
from tests.sids import new_sid

# The calls' fixtures: a clock the runtime reads, and a Twilio that places calls.
clock = calls_fixtures.clock
phone = calls_fixtures.phone

PASSWORD = "correct horse battery"
ROLES = ("staff", "supervisor", "compliance", "admin")
# The staff user is Līga (lozola), Jānis's substitute while he is away.
USERS = {
    "staff": ("liga", "staff", "lozola"),
    "supervisor": ("boss", "supervisor", None),
    "compliance": ("audit", "compliance", None),
    "admin": ("root", "admin", None),
}


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, with the cheapest parameters: the suite hashes hundreds of passwords."""
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@pytest.fixture
def people(sessions: sessionmaker[Session], clock: Clock) -> dict[str, int]:
    """Staff, lines and one user per role; returns the user ids by role."""
    ids: dict[str, int] = {}
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone=JANIS)
        directory.add_staff(session, "lozola", name="Līga Ozola", phone=LIGA)
        directory.add_staff(session, "akalnins", name="Andris Kalniņš", phone=ANDRIS)
        directory.add_group(session, "abonenti", name="Abonenti", members=["akalnins", "lozola"])
        directory.add_line(session, DIRECT, target="staff:jberzins", hours="always")
        directory.add_line(session, DEPARTMENT, target="group:abonenti")
        for role, (username, user_role, staff) in USERS.items():
            user = accounts.add_user(
                session,
                username,
                role=user_role,
                password=PASSWORD,
                staff_key=staff,
                now=datetime(2026, 1, 1, tzinfo=UTC),
            )
            ids[role] = user.id
    return ids


SignedIn = Callable[[str | None], FlaskClient]


@pytest.fixture
def signed_in(app: Flask, people: dict[str, int]) -> SignedIn:
    """A client with a session for a role (None: anonymous), as Flask-Login keeps it."""

    def make(role: str | None) -> FlaskClient:
        client = app.test_client()
        if role is not None:
            with client.session_transaction() as session:
                session["_user_id"] = str(people[role])
                session["_fresh"] = True
        return client

    return make


@pytest.fixture
def tokens(sessions: sessionmaker[Session], people: dict[str, int]) -> dict[str, str]:
    found: dict[str, str] = {}
    with sessions.begin() as session:
        for role, (username, _r, _s) in USERS.items():
            _row, found[role] = accounts.create_token(
                session, username, now=datetime(2026, 1, 1, tzinfo=UTC)
            )
    return found


def csrf_token(client: FlaskClient, path: str = "/console/login") -> str:
    """Read the CSRF token from a form the page renders."""
    import re

    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:500]
    return match.group(1)


def bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}


# A recording's audio for the compliance tests: a WAV header and 200 kB of varied bytes, so
# that a range in the middle is told from the start.
AUDIO = b"RIFF" + bytes(range(256)) * 800


def add_recording_to(
    runtime: Runtime,
    started_at: datetime,
    *,
    content: bytes = AUDIO,
    line: str | None = DIRECT,
    status: str = "stored",
    on_hold: bool = False,
) -> str:
    """Store a recording as ingestion leaves it (object, row, `stored` entry); return its SID."""
    sid = new_sid("RE")
    call_sid = new_sid("CA")
    key = stored = None
    if status == "stored":
        key = f"recordings/{started_at:%Y/%m}/{sid}.wav"
        stored = runtime.storage.put_stream(key, [content])
    with transaction(runtime.sessions) as session:
        if line is not None:
            session.add(
                Call(
                    call_sid=call_sid,
                    from_number="+37129000001",
                    to_number=line,
                    started_at=started_at,
                    outcome="answered",
                )
            )
        session.add(
            Recording(
                recording_sid=sid,
                call_sid=call_sid,
                status=status,
                started_at=started_at,
                due_at=due_at(started_at, runtime.settings),
                storage_key=key,
                size_bytes=stored.size if stored else None,
                sha256=stored.sha256 if stored else None,
                stored_at=started_at if stored else None,
                deleted_at=started_at if status == "deleted" else None,
                on_hold=on_hold,
            )
        )
        session.flush()
        if stored is not None:
            retention_log.append(
                session,
                "stored",
                now=started_at,
                recording_sid=sid,
                actor="ingest",
                details={"key": key, "size": stored.size, "sha256": stored.sha256},
            )
    return sid


AddRecording = Callable[..., str]


@pytest.fixture
def add_recording(runtime: Runtime, clock: Clock) -> AddRecording:
    def add(started_at: datetime | None = None, **kwargs: Any) -> str:
        return add_recording_to(
            runtime, started_at or datetime(2026, 2, 10, 9, tzinfo=UTC), **kwargs
        )

    return add
