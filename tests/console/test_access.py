"""Every route for every role and for anonymous visitors; every route declares its access."""

from __future__ import annotations

import pytest
from flask import Flask

from console import access
from tests.console.conftest import ROLES, SignedIn, bearer

S, V, C, A, ANON = "staff", "supervisor", "compliance", "admin", None
NO_RECORDING = "RE" + "0" * 32

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
    # Compliance: the retention pages.
    ("GET", "/console/retention", (403, 403, 200, 403, 302)),
    ("GET", "/console/retention/log.csv", (403, 403, 200, 403, 302)),
    ("GET", "/console/retention/log.json", (403, 403, 200, 403, 302)),
    ("GET", "/console/retention/log.xml", (403, 403, 404, 403, 302)),
    ("GET", "/console/retention/verify", (403, 403, 200, 403, 302)),
    ("POST", "/console/retention/verify", (403, 403, 400, 403, 302)),
    ("GET", "/console/retention/due", (403, 403, 200, 403, 302)),
    ("GET", "/console/retention/holds", (403, 403, 200, 403, 302)),
    ("POST", "/console/retention/holds", (403, 403, 400, 403, 302)),
    ("POST", f"/console/retention/holds/{NO_RECORDING}/release", (403, 403, 400, 403, 302)),
    ("GET", "/console/retention/access", (403, 403, 200, 403, 302)),
    ("GET", "/console/retention/access.csv", (403, 403, 200, 403, 302)),
    # Recordings: found and listened to by compliance and supervisors.
    ("GET", "/console/recordings", (403, 200, 200, 403, 302)),
    ("GET", f"/console/recordings/{NO_RECORDING}", (403, 404, 404, 403, 302)),
    ("POST", f"/console/recordings/{NO_RECORDING}/access", (403, 400, 400, 403, 302)),
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
    # Compliance: the retention log, holds, what is due, verification.
    ("GET", "/api/retention/log", None, (403, 403, 200, 403, 401)),
    ("GET", "/api/retention/holds", None, (403, 403, 200, 403, 401)),
    ("POST", "/api/retention/holds", {}, (403, 403, 422, 403, 401)),
    ("DELETE", f"/api/retention/holds/{NO_RECORDING}", {"reason": "x"}, (403, 403, 404, 403, 401)),
    ("GET", "/api/retention/upcoming", None, (403, 403, 200, 403, 401)),
    # No recordings directory yet in a fresh test: the storage is unavailable (503).
    ("POST", "/api/retention/verify", None, (403, 403, 503, 403, 401)),
    # Listening with a reason: compliance and supervisors.
    ("POST", f"/api/recordings/{NO_RECORDING}/access", {}, (403, 400, 400, 403, 401)),
    ("POST", f"/api/recordings/{NO_RECORDING}/access", {"reason": "r"}, (403, 404, 404, 403, 401)),
    # The audio's signed address: anyone may try; a bad address is refused whoever asks.
    ("GET", f"/api/recordings/{NO_RECORDING}/audio/x.y", None, (403, 403, 403, 403, 403)),
]


@pytest.mark.parametrize(("method", "path", "expected"), PAGES)
def test_pages_answer_each_role_as_declared(
    signed_in: SignedIn, method: str, path: str, expected: tuple[int, ...]
) -> None:
    for role, status in zip((*ROLES, None), expected, strict=True):
        client = signed_in(role)
        # buffered: a streamed body (the log's export) is read to its end and closed.
        response = client.open(path, method=method, buffered=True)
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
        response = client.open(path, method=method, json=body, headers=headers, buffered=True)
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
    audio = "/api/recordings/<recording_sid>/audio/<token>"
    assert kinds[audio] == access.SIGNED_ADDRESS
    assert kinds["/api/retention/log"] == access.Access("roles", frozenset({"compliance"}))
    assert kinds["/api/recordings/<recording_sid>/access"] == access.Access(
        "roles", frozenset({"compliance", "supervisor"})
    )


def test_signed_address_routes_refuse_requests_without_a_valid_address(app: Flask) -> None:
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if access.rule_for(app, rule.endpoint) == access.SIGNED_ADDRESS:
            path = rule.rule.replace("<recording_sid>", NO_RECORDING).replace("<token>", "e30.x")
            assert client.get(path).status_code == 403, rule.rule


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
