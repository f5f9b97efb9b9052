"""The API against its own OpenAPI description, with schemathesis: every operation, generated
parameters and bodies; no 500, every answer's status, content type and body as described.

The default run keeps examples few; `pytest -m long` (CI, once) runs many more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from callcenter.accounts import service as accounts
from callcenter.calls.models import CallbackRequest
from callcenter.directory import service as directory
from tests.calls.conftest import MONDAY
from tests.console.conftest import AddRecording, bearer

OPERATIONS = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(
    app: Flask, people: dict[str, int], sessions: sessionmaker[Session], add_recording: AddRecording
) -> Any:
    add_recording()
    add_recording(on_hold=True)
    with sessions.begin() as session:
        directory.add_absence(
            session,
            "jberzins",
            starts_at=MONDAY,
            ends_at=datetime(2026, 3, 9, tzinfo=UTC),
            substitute_key="lozola",
        )
        session.add(
            CallbackRequest(
                phone="+37129111111",
                local_day=MONDAY.date(),
                reason="missed",
                requested_at=MONDAY,
                due_at=datetime(2026, 3, 4, 15, tzinfo=UTC),
                status="open",
            )
        )
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@pytest.fixture
def supervisor_token(sessions: sessionmaker[Session], api_schema: Any) -> str:
    with sessions.begin() as session:
        _row, token = accounts.create_token(session, "boss", now=datetime(2026, 1, 1, tzinfo=UTC))
    return token


@pytest.fixture
def compliance_token(sessions: sessionmaker[Session], api_schema: Any) -> str:
    with sessions.begin() as session:
        _row, token = accounts.create_token(session, "audit", now=datetime(2026, 1, 1, tzinfo=UTC))
    return token


def exercise(api_schema: Any, token: str, examples: int) -> int:
    """Run every operation of the description with generated requests; return how many."""
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=bearer(token), checks=CHECKS)

        run()
    return operations


def test_the_api_answers_as_its_description_says(
    api_schema: Any, supervisor_token: str, compliance_token: str
) -> None:
    assert exercise(api_schema, supervisor_token, examples=25) == OPERATIONS
    assert exercise(api_schema, compliance_token, examples=15) == OPERATIONS


@pytest.mark.long
def test_the_api_answers_as_its_description_says_at_length(
    api_schema: Any, supervisor_token: str, compliance_token: str
) -> None:
    assert exercise(api_schema, supervisor_token, examples=500) == OPERATIONS
    assert exercise(api_schema, compliance_token, examples=500) == OPERATIONS


def test_the_description_is_openapi_3_and_covers_the_contract(app: Flask) -> None:
    document = app.test_client().get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations == {
        ("GET", "/api/me"),
        ("GET", "/api/absences"),
        ("POST", "/api/absences"),
        ("DELETE", "/api/absences/{absence_id}"),
        ("GET", "/api/calls"),
        ("GET", "/api/callbacks"),
        ("POST", "/api/callbacks/{request_id}/done"),
        ("GET", "/api/retention/log"),
        ("GET", "/api/retention/holds"),
        ("POST", "/api/retention/holds"),
        ("DELETE", "/api/retention/holds/{recording_sid}"),
        ("GET", "/api/retention/upcoming"),
        ("POST", "/api/retention/verify"),
        ("POST", "/api/recordings/{recording_sid}/access"),
        ("GET", "/api/recordings/{recording_sid}/audio/{token}"),
    }
    assert len(operations) == OPERATIONS
    audio = document["paths"]["/api/recordings/{recording_sid}/audio/{token}"]["get"]
    assert audio["security"] == []  # whoever holds the address
