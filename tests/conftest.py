"""Shared fixtures: a clean database per test (SQLite, or PostgreSQL when TEST_DATABASE_URL is
set), settings, the app, and a client that signs requests exactly as Twilio does."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from callcenter import migrate
from callcenter.app import create_app
from callcenter.db import make_engine, make_sessionmaker
from callcenter.runtime import Runtime
from callcenter.schema import metadata
from callcenter.settings import Settings, load

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_BASE_URL = "https://calls.example.test"
RIGA = ZoneInfo("Europe/Riga")

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def _pg_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate one database per test run; tests get clean copies of it.

    On PostgreSQL the run gets a database of its own, so runs at the same time (CI beside a
    developer) do not see each other's rows.
    """
    if TEST_DATABASE_URL:
        admin_url = make_url(_pg_url(TEST_DATABASE_URL))
        name = f"cc_test_{uuid.uuid4().hex[:10]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        try:
            yield url
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        path = tmp_path_factory.mktemp("db") / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        yield str(path)


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> str:
    """A clean, migrated database for one test."""
    if TEST_DATABASE_URL:
        engine = create_engine(database_template)
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        with engine.begin() as connection:
            # Replica mode switches triggers off for this session only, so the append-only
            # retention log can be emptied between tests.
            # A test that leaves a transaction open would make TRUNCATE wait forever: fail
            # loudly instead, naming the lock.
            connection.execute(text("SET lock_timeout = '20s'"))
            connection.execute(text("SET session_replication_role = replica"))
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            # The migration's own row, as a freshly migrated database has it.
            connection.execute(text("INSERT INTO directory_version (id, version) VALUES (1, 0)"))
        engine.dispose()
        return database_template
    path = tmp_path / "callcenter.db"
    shutil.copyfile(database_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging and checking; the code under test commits on its own."""
    with sessions() as session:
        yield session


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment a deployed process would have, pointing at this test's resources."""
    return {
        "DATABASE_URL": database_url,
        "RECORDINGS_URL": f"file:{tmp_path / 'recordings'}",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "SECRET_KEY": "test-secret",
        "FALLBACK_NUMBER": "+37167000000",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load(env)


@pytest.fixture
def runtime(settings: Settings, engine: Engine) -> Iterator[Runtime]:
    runtime = Runtime(settings, _engine=engine)
    yield runtime
    runtime.close()


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    app = create_app(runtime=runtime)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def sign(url: str, form: dict[str, Any], token: str = AUTH_TOKEN) -> str:
    """Compute X-Twilio-Signature exactly as Twilio does."""
    return str(RequestValidator(token).compute_signature(url, form))


TwilioPost = Callable[..., TestResponse]


@pytest.fixture
def twilio_post(client: FlaskClient) -> TwilioPost:
    """POST a form to one of our paths, signed as Twilio signs it."""

    def post(path: str, form: dict[str, Any], *, signature: str | None = None) -> TestResponse:
        form = {k: v for k, v in form.items() if v is not None}
        if signature is None:
            signature = sign(PUBLIC_BASE_URL + path, form)
        return client.post(path, data=form, headers={"X-Twilio-Signature": signature})

    return post
