"""The webhooks answered ahead of Flask (webhooks.front) answer exactly as their Flask routes do."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import Client, EnvironBuilder, TestResponse, run_wsgi_app

from callcenter.directory import service as directory
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, sign
from tests.sids import new_sid
from webhooks import front, paths
from webhooks.front import TwilioFront

LINE = "+37167000001"


@pytest.fixture
def line(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone="20000001")
        directory.add_line(session, LINE, target="staff:jberzins", hours="always")


def call_sid() -> str:
    return new_sid("CA")


def _post(client: Client, path: str, form: dict[str, str], signature: str | None = None) -> Any:
    if signature is None:
        signature = sign(PUBLIC_BASE_URL + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def _flask_only(app: Flask) -> Client:
    """A client of the Flask app behind the front: every request takes the Flask route."""
    front = app.wsgi_app
    assert isinstance(front, TwilioFront)
    return Client(front.app, TestResponse)


def _call(sid: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": ACCOUNT_SID, "From": "+37129111111", "To": LINE,
            "CallStatus": "ringing", "Direction": "inbound"}  # fmt: skip


def _answer(response: Any) -> tuple[int, str | None, str | None, bytes]:
    return (
        response.status_code,
        response.headers.get("Content-Type"),
        response.headers.get("Content-Length"),
        response.get_data(),
    )


CASES = {
    "a call": lambda sid: (paths.VOICE, _call(sid), None),
    "a call without From": lambda sid: (
        paths.VOICE,
        {k: v for k, v in _call(sid).items() if k != "From"},
        None,
    ),
    "an unsigned call": lambda sid: (paths.VOICE, _call(sid), "bad"),
    "a malformed CallSid": lambda sid: (paths.STATUS, {**_call(sid), "CallSid": "CA-nope"}, None),
    "a status of a call we do not know": lambda sid: (
        paths.STATUS,
        {**_call(sid), "CallStatus": "completed", "SequenceNumber": "1"},
        None,
    ),
    "a dial's end of a call we do not know": lambda sid: (
        paths.DIAL_COMPLETE,
        {**_call(sid), "DialCallStatus": "no-answer"},
        None,
    ),
    "a recording still in progress": lambda sid: (
        paths.RECORDING_STATUS,
        {
            "AccountSid": ACCOUNT_SID,
            "CallSid": sid,
            "RecordingSid": "RE" + "3" * 32,
            "RecordingStatus": "in-progress",
        },
        None,
    ),
    "a recording without its status": lambda sid: (
        paths.RECORDING_STATUS,
        {"AccountSid": ACCOUNT_SID, "CallSid": sid, "RecordingSid": "RE" + "3" * 32},
        None,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_front_answers_what_the_flask_route_answers(
    app: Flask, client: FlaskClient, line: None, case: str
) -> None:
    path, form, signature = CASES[case](call_sid())
    front = _post(client, path, form, signature)
    # The same request about another call, through Flask alone.
    path, form, signature = CASES[case](call_sid())
    flask = _post(_flask_only(app), path, form, signature)
    assert _answer(front) == _answer(flask)
    assert front.status_code in (200, 204, 400, 403)


def test_webhook_posts_are_answered_ahead_of_flask_and_the_rest_through_it(
    app: Flask, client: FlaskClient, line: None
) -> None:
    seen: list[str] = []
    app.before_request(lambda: seen.append("flask") and None)
    assert _post(client, paths.VOICE, _call(call_sid())).status_code == 200
    assert seen == []
    # Another method, or a body sent in chunks: Flask's route, with the same handler.
    assert client.get(paths.VOICE).status_code == 405
    assert seen == ["flask"]
    form = _call(call_sid())
    builder = EnvironBuilder(
        path=paths.VOICE,
        method="POST",
        data=form,
        headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + paths.VOICE, form)},
    )
    environ = builder.get_environ()
    # As gunicorn hands on a chunked body: no length, the input ends where the body does.
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    body, status, _headers = run_wsgi_app(app, environ, buffered=True)
    assert seen == ["flask", "flask"]
    assert status.startswith("200") and b"<Dial" in b"".join(body)


def test_a_handler_that_raises_is_a_plain_500_not_a_traceback(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(runtime: Any, incoming: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setitem(front.HANDLERS, paths.STATUS, broken)
    response = _post(client, paths.STATUS, _call(call_sid()))
    assert response.status_code == 500
    assert response.data == b"500 Internal Server Error\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
