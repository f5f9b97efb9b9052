"""The JSON API: staff see and change only their own; the command line's rules, as 422."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.directory.models import Absence
from tests.calls.conftest import ANDRIS, OFFICE, Twilio, dialled, sid
from tests.console.conftest import SignedIn, bearer

WEEK = {"start": "2026-03-03T08:00", "end": "2026-03-06T17:00"}


def client_for(signed_in: SignedIn, tokens: dict[str, str], role: str) -> tuple[FlaskClient, dict]:
    return signed_in(None), bearer(tokens[role])


def test_staff_add_and_cancel_their_own_absences_only(
    signed_in: SignedIn, tokens: dict[str, str], session: Session
) -> None:
    client, auth = client_for(signed_in, tokens, "staff")
    added = client.post("/api/absences", json={**WEEK, "substitute": "akalnins"}, headers=auth)
    assert added.status_code == 201
    body = added.get_json()
    assert body["staff"] == "lozola" and body["start"] == "2026-03-03T08:00:00+02:00"
    other = {**WEEK, "staff": "jberzins", "substitute": "akalnins"}
    assert client.post("/api/absences", json=other, headers=auth).status_code == 403
    boss, boss_auth = client_for(signed_in, tokens, "supervisor")
    theirs = boss.post("/api/absences", json=other, headers=boss_auth).get_json()
    assert [a["id"] for a in client.get("/api/absences", headers=auth).get_json()] == [body["id"]]
    assert client.delete(f"/api/absences/{theirs['id']}", headers=auth).status_code == 404
    assert client.delete(f"/api/absences/{body['id']}", headers=auth).status_code == 204
    assert client.delete(f"/api/absences/{body['id']}", headers=auth).status_code == 404


def test_the_command_lines_rules_are_422_and_write_nothing(
    signed_in: SignedIn, tokens: dict[str, str], session: Session
) -> None:
    client, auth = client_for(signed_in, tokens, "supervisor")
    cases = {
        "after": {"staff": "lozola", "start": "2026-03-05T08:00", "end": "2026-03-04T08:00"},
        "themselves": {"staff": "lozola", **WEEK, "substitute": "lozola"},
        "no staff member": {"staff": "nobody", **WEEK, "substitute": "lozola"},
        "does not exist": {
            "staff": "lozola",
            "start": "2026-03-29T03:30",
            "end": "2026-03-30T08:00",
        },
        "not an ISO": {"staff": "lozola", "start": "tomorrow", "end": "2026-03-30T08:00"},
        "must be a string": {"staff": "lozola", "start": 5, "end": "2026-03-30T08:00"},
    }
    for words, body in cases.items():
        body.setdefault("substitute", "akalnins")
        response = client.post("/api/absences", json=body, headers=auth)
        assert response.status_code == 422, (words, response.get_json())
        assert words in response.get_json()["error"]
    first = {"staff": "lozola", **WEEK, "substitute": "akalnins"}
    assert client.post("/api/absences", json=first, headers=auth).status_code == 201
    overlap = client.post("/api/absences", json=first, headers=auth)
    assert overlap.status_code == 422 and "already has absence" in overlap.get_json()["error"]
    cycle = {"staff": "akalnins", **WEEK, "substitute": "lozola"}
    refused = client.post("/api/absences", json=cycle, headers=auth)
    assert refused.status_code == 422 and "cycle of substitutes" in refused.get_json()["error"]
    assert session.scalar(select(func.count()).select_from(Absence)) == 1
    bad = client.post(
        "/api/absences", data="{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert bad.status_code == 400 and "JSON" in bad.get_json()["error"]


def test_staff_see_their_own_calls_and_callbacks(
    signed_in: SignedIn,
    tokens: dict[str, str],
    sessions: object,
    phone: object,
) -> None:
    from sqlalchemy.orm import sessionmaker

    from callcenter.directory import service as directory

    assert isinstance(sessions, sessionmaker)
    with sessions.begin() as s:
        directory.add_line(s, OFFICE, target="staff:akalnins", hours="always")
    call: Twilio = phone(line=OFFICE)  # type: ignore[operator]
    assert dialled(call.start()) == [ANDRIS]
    leg = sid()
    call.status(call.leg_form(leg, ANDRIS, "no-answer"))
    call.dial(call.dial_form("no-answer", leg))
    call.status(call.parent_form("completed"))

    staff, auth = client_for(signed_in, tokens, "staff")  # Līga: not her call
    assert staff.get("/api/calls", headers=auth).get_json() == []
    assert staff.get("/api/callbacks", headers=auth).get_json() == []
    boss, boss_auth = client_for(signed_in, tokens, "supervisor")
    calls = boss.get("/api/calls?outcome=no-answer", headers=boss_auth).get_json()
    assert [c["call_sid"] for c in calls] == [call.call_sid]
    assert {
        "call_sid",
        "from",
        "to",
        "started_at",
        "outcome",
        "answered_by",
        "as_substitute",
    } <= set(calls[0])
    callbacks = boss.get("/api/callbacks", headers=boss_auth).get_json()
    assert callbacks[0]["call_sid"] == call.call_sid
    request_id = callbacks[0]["id"]
    assert staff.post(f"/api/callbacks/{request_id}/done", json={}, headers=auth).status_code == 404
    done = boss.post(
        f"/api/callbacks/{request_id}/done", json={"note": "called"}, headers=boss_auth
    )
    assert done.status_code == 200 and done.get_json()["status"] == "done"
    again = boss.post(f"/api/callbacks/{request_id}/done", json={"note": "x"}, headers=boss_auth)
    assert again.status_code == 422
    assert boss.get("/api/calls?since=yesterday", headers=boss_auth).status_code == 400


@pytest.mark.parametrize(
    "path", ["/api/calls?staff=%00", "/api/callbacks?status=%00", "/api/calls?outcome=a%00b"]
)
def test_a_nul_in_a_query_is_a_plain_400_on_both_databases(
    signed_in: SignedIn, tokens: dict[str, str], path: str
) -> None:
    # Found by schemathesis on PostgreSQL, which refuses NUL in any text: a 500 before.
    client, auth = client_for(signed_in, tokens, "supervisor")
    response = client.get(path, headers=auth)
    assert response.status_code == 400
    assert "NUL" in response.get_json()["error"]
