"""What every webhook refuses, and how: SIDs not of Twilio's form, bodies over the limit,
signatures that are missing, wrong or made for another URL; a second token during a rotation."""

from __future__ import annotations

import io
import logging
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter import logs
from callcenter.calls.models import Call
from callcenter.runtime import Runtime
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, TwilioPost, sign

WEBHOOKS = [
    "/twilio/voice",
    "/twilio/voice/dial-complete",
    "/twilio/voice/status",
    "/twilio/voice/whisper",
    "/twilio/voice/callback-request",
    "/twilio/recording-status",
]


def good_form(**overrides: str) -> dict[str, str]:
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + uuid.uuid4().hex,
        "From": "+37129111111",
        "To": "+37167000002",
        "CallStatus": "ringing",
        "DialCallStatus": "no-answer",
        "RecordingSid": "RE" + uuid.uuid4().hex,
        "RecordingStatus": "completed",
        "RecordingStartTime": "Mon, 23 Nov 2026 10:00:00 +0000",
    }
    form.update(overrides)
    return form


def calls(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(Call)) or 0)


@pytest.mark.parametrize("path", WEBHOOKS)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("CallSid", "true"),
        ("CallSid", "CA1"),
        ("CallSid", "CA" + "g" * 32),
        ("CallSid", "RE" + "0" * 32),
        ("CallSid", "CA" + "0" * 32 + "\nINFO forged line"),
        ("ParentCallSid", "parent"),
        ("DialCallSid", "CA" + "0" * 31),
        ("AccountSid", ACCOUNT_SID.lower().replace("ac", "xx", 1)),
    ],
)
def test_a_sid_not_of_twilios_form_is_refused_with_a_plain_400_on_every_webhook(
    twilio_post: TwilioPost, session: Session, path: str, field: str, value: str
) -> None:
    response = twilio_post(path, good_form(**{field: value}))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert field in response.get_data(as_text=True)
    assert calls(session) == 0


def test_a_recording_sid_of_another_form_is_refused(twilio_post: TwilioPost) -> None:
    response = twilio_post("/twilio/recording-status", good_form(RecordingSid="RE123"))
    assert response.status_code == 400


def refusal(caplog: pytest.LogCaptureFixture) -> str:
    lines = [r.getMessage() for r in caplog.records if r.name == "webhooks.security"]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("path", [*WEBHOOKS, "/twilio/voice/fallback"])
def test_refusals_say_which_in_the_log_and_answer_plain_text(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    form = good_form()
    caplog.set_level(logging.WARNING)
    missing = client.post(path, data=form)
    assert (missing.status_code, missing.mimetype) == (403, "text/plain")
    assert "<" not in missing.get_data(as_text=True)
    assert "missing signature" in refusal(caplog)

    caplog.clear()
    expected = sign(PUBLIC_BASE_URL + path, form)
    wrong = client.post(
        path, data=form, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, form, "x")}
    )
    assert wrong.status_code == 403
    line = refusal(caplog)
    assert "wrong signature" in line and expected not in line

    caplog.clear()
    # Signed for the address the request arrived at (http://localhost), not PUBLIC_BASE_URL.
    elsewhere = client.post(
        path, data=form, headers={"X-Twilio-Signature": sign("http://localhost" + path, form)}
    )
    assert elsewhere.status_code == 403
    line = refusal(caplog)
    assert "URL mismatch" in line and expected not in line


def test_a_request_value_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("webhooks.test").warning(
        "refused %s", "/twilio/voice\n2026-01-01T00:00:00 INFO forged\x1b[31m\u2028"
    )
    (record,) = caplog.records
    text = logs.TextFormatter().format(record)
    assert "\n" not in text and "\x1b" not in text and "\u2028" not in text
    assert "\\x0a2026-01-01T00:00:00 INFO forged\\x1b" in text
    assert "\n" not in logs.JsonFormatter().format(record)
    assert logs.escape("a\r\nb" + "x" * 500).startswith("a\\x0d\\x0ab")
    assert len(logs.escape("x" * 500)) < 140


def test_during_a_token_rotation_both_tokens_are_accepted(
    runtime: Runtime, client: FlaskClient
) -> None:
    form = good_form()
    path = "/twilio/voice/fallback"
    new = sign(PUBLIC_BASE_URL + path, form, "the-new-token")
    assert client.post(path, data=form, headers={"X-Twilio-Signature": new}).status_code == 403
    runtime.settings = runtime.settings.with_overrides(twilio_auth_token_secondary="the-new-token")
    assert client.post(path, data=form, headers={"X-Twilio-Signature": new}).status_code == 200
    old = sign(PUBLIC_BASE_URL + path, form)
    assert client.post(path, data=form, headers={"X-Twilio-Signature": old}).status_code == 200


def big_form(size: int) -> dict[str, Any]:
    return {**good_form(), "Padding": "x" * size}


@pytest.mark.parametrize("path", WEBHOOKS)
def test_a_body_over_the_limit_is_refused_with_413(twilio_post: TwilioPost, path: str) -> None:
    response = twilio_post(path, big_form(70 * 1024))
    assert response.status_code == 413
    assert response.mimetype == "text/plain"


def test_a_chunked_body_over_the_limit_is_refused_not_cut(client: FlaskClient) -> None:
    form = big_form(70 * 1024)
    body = "&".join(f"{k}={v}" for k, v in form.items()).encode()
    path = "/twilio/voice/status"
    response = client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, form)},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == 413


def test_a_small_chunked_body_is_read_whole(client: FlaskClient) -> None:
    form = good_form()
    body = "&".join(f"{k}={v}" for k, v in form.items()).replace("+", "%2B").encode()
    path = "/twilio/voice/fallback"
    response = client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, form)},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )
    assert response.status_code == 200
