"""Every route for every role and for anonymous visitors; every route declares its access."""

from __future__ import annotations

import pytest
from flask import Flask

from console import access
from tests.console.conftest import ROLES, SignedIn, bearer

S, V, C, A, ANON = "staff", "supervisor", "compliance", "admin", None

# method, path, expected status for staff, supervisor, compliance, admin, anonymous.
# Allowed page POSTs without their form's CSRF token answer 400: the role check comes first.
PAGES: list[tuple[str, str, tuple[int, int, int, int, int]]] = [
    ("GET", "/console/", (200, 200, 200, 200, 302)),
    ("GET", "/console/login", (200, 200, 200, 200, 200)),
    ("GET", "/console/static/console.css", (200, 200, 200, 200, 200)),
    ("GET", "/console/absences", (200, 200, 403, 403, 302)),
    ("GET", "/console/calls", (200, 200, 403, 403, 302)),
    ("GET", "/console/callbacks", (200, 200, 403, 403, 302)),
    ("GET", "/console/chart", (200, 200, 403, 403, 302)),
    ("GET", "/console/chart.svg", (200, 200, 403, 403, 302)),
    ("GET", "/console/directory", (403, 200, 403, 403, 302)),
    ("GET", "/console/users", (403, 403, 403, 200, 302)),
    ("GET", "/console/nothing-here", (404, 404, 404, 404, 404)),
    ("POST", "/console/absences", (400, 400, 403, 403, 302)),
    ("POST", "/console/absences/1/cancel", (400, 400, 403, 403, 302)),
    ("POST", "/console/callbacks/1/done", (400, 400, 403, 403, 302)),
    ("POST", "/console/directory/staff", (403, 400, 403, 403, 302)),
    ("POST", "/console/directory/staff/lozola/deactivate", (403, 400, 403, 403, 302)),
    ("POST", "/console/directory/groups", (403, 400, 403, 403, 302)),
    ("POST", "/console/directory/lines", (403, 400, 403, 403, 302)),
    ("POST", "/console/directory/hours", (403, 400, 403, 403, 302)),
    ("POST", "/console/directory/hours/2026-03-02/remove", (403, 400, 403, 403, 302)),
    ("POST", "/console/users", (403, 403, 403, 400, 302)),
    ("POST", "/console/users/liga/deactivate", (403, 403, 403, 400, 302)),
    ("POST", "/console/logout", (400, 400, 400, 400, 302)),
]

# The API with bearer tokens (no CSRF for tokens): the same for signed-in sessions' reads.
API: list[tuple[str, str, dict | None, tuple[int, int, int, int, int]]] = [
    ("GET", "/api/openapi.json", None, (200, 200, 200, 200, 200)),
    ("GET", "/api/me", None, (200, 200, 200, 200, 401)),
    ("GET", "/api/absences", None, (200, 200, 403, 403, 401)),
    ("POST", "/api/absences", {}, (422, 422, 403, 403, 401)),
    ("DELETE", "/api/absences/999", None, (404, 404, 403, 403, 401)),
    ("GET", "/api/calls", None, (200, 200, 403, 403, 401)),
    ("GET", "/api/callbacks", None, (200, 200, 403, 403, 401)),
    ("POST", "/api/callbacks/999/done", {}, (404, 404, 403, 403, 401)),
    ("GET", "/api/nothing-here", None, (404, 404, 404, 404, 404)),
]


@pytest.mark.parametrize(("method", "path", "expected"), PAGES)
def test_pages_answer_each_role_as_declared(
    signed_in: SignedIn, method: str, path: str, expected: tuple[int, ...]
) -> None:
    for role, status in zip((*ROLES, None), expected, strict=True):
        client = signed_in(role)
        response = client.open(path, method=method)
        assert response.status_code == status, (role, method, path, response.status_code)
        if status == 302:
            assert response.headers["Location"].startswith("/console/login?next=")


@pytest.mark.parametrize(("method", "path", "body", "expected"), API)
def test_api_answers_each_role_as_declared(
    signed_in: SignedIn,
    tokens: dict[str, str],
    method: str,
    path: str,
    body: dict | None,
    expected: tuple[int, ...],
) -> None:
    for role, status in zip((*ROLES, None), expected, strict=True):
        client = signed_in(None)
        headers = bearer(tokens[role]) if role else {}
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == status, (role, method, path, response.get_data())
        if status >= 400:
            assert set(response.get_json()) == {"error"}


def test_a_wrong_token_is_anonymous(signed_in: SignedIn, tokens: dict[str, str]) -> None:
    client = signed_in(None)
    assert client.get("/api/me", headers=bearer(tokens["staff"] + "x")).status_code == 401
    assert client.get("/api/me", headers=bearer("cc_nonsense")).status_code == 401
    response = client.get("/api/me", headers=bearer(tokens["staff"]))
    assert response.get_json() == {"username": "liga", "role": "staff", "staff": "lozola"}


def test_a_signed_in_session_works_for_the_api(signed_in: SignedIn) -> None:
    response = signed_in("supervisor").get("/api/me")
    assert response.get_json() == {"username": "boss", "role": "supervisor", "staff": None}


def test_every_route_declares_its_access(app: Flask) -> None:
    undeclared = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if access.rule_for(app, rule.endpoint) is None
    ]
    assert undeclared == []
    kinds = {rule.rule: access.rule_for(app, rule.endpoint) for rule in app.url_map.iter_rules()}
    assert kinds["/twilio/voice"] == access.TWILIO_SIGNED
    assert kinds["/healthz"] == access.PUBLIC
    assert kinds["/metrics"] == access.BEARER_TOKEN
    assert kinds["/api/openapi.json"] == access.PUBLIC
    assert kinds["/console/users"] == access.Access("roles", frozenset({"admin"}))


def test_twilio_declared_routes_refuse_unsigned_requests(app: Flask) -> None:
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if access.rule_for(app, rule.endpoint) == access.TWILIO_SIGNED:
            assert client.post(rule.rule, data={"CallSid": "CA1"}).status_code == 403, rule.rule


def test_a_route_without_a_rule_is_refused(app: Flask, signed_in: SignedIn) -> None:
    app.add_url_rule("/console/undeclared", "undeclared", lambda: "secret")
    response = signed_in("supervisor").get("/console/undeclared")
    assert response.status_code == 403
    assert b"secret" not in response.data
