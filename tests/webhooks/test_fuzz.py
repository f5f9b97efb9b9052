"""Generated requests at every webhook and /healthz, signed and not: the answers hold.

A few hundred in the default run; at least 10,000 with `python -m pytest -m long` (CI runs it
once). For every request: no 5xx; an unsigned or wrongly signed one refused with 403 in plain
text; a signed one to a voice route answered with well-formed TwiML (or a plain 400 naming
what is wrong); a body over the limit refused with 413.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, sign

VOICE_ROUTES = [
    "/twilio/voice",
    "/twilio/voice/fallback",
    "/twilio/voice/dial-complete",
    "/twilio/voice/whisper",
    "/twilio/voice/callback-request",
]
OTHER_WEBHOOKS = ["/twilio/voice/status", "/twilio/recording-status"]
WEBHOOKS = VOICE_ROUTES + OTHER_WEBHOOKS
LIMIT = 64 * 1024


def hexsid(prefix: str) -> st.SearchStrategy[str]:
    return st.builds(lambda: prefix + uuid.uuid4().hex)


# Any text HTTP can carry as UTF-8 (lone surrogates cannot be encoded at all).
chars = st.characters(blacklist_categories=("Cs",))
anything = st.text(chars, max_size=300)
values = {
    "CallSid": st.one_of(hexsid("CA"), anything),
    "ParentCallSid": st.one_of(hexsid("CA"), anything),
    "DialCallSid": st.one_of(hexsid("CA"), anything),
    "RecordingSid": st.one_of(hexsid("RE"), anything),
    "AccountSid": st.one_of(st.just(ACCOUNT_SID), hexsid("AC"), anything),
    "From": st.one_of(
        st.sampled_from(["+37129111111", "anonymous", "client:anna", "sip:a@b.sip.twilio.com"]),
        anything,
    ),
    "To": st.one_of(st.sampled_from(["+37167000002", "+37120000001"]), anything),
    "CallStatus": st.one_of(
        st.sampled_from(["ringing", "in-progress", "completed", "busy", "no-answer", "failed"]),
        anything,
    ),
    "DialCallStatus": st.one_of(
        st.sampled_from(["completed", "answered", "busy", "no-answer", "failed", "canceled"]),
        anything,
    ),
    "DialBridged": st.sampled_from(["true", "false", ""]),
    "Digits": st.one_of(st.sampled_from(["1", "2", "29111111#", ""]), anything),
    "RecordingStatus": st.one_of(
        st.sampled_from(["completed", "absent", "failed", "in-progress"]), anything
    ),
    "RecordingStartTime": st.one_of(
        st.sampled_from(
            ["Mon, 23 Nov 2026 10:00:00 +0000", "9999-12-31T23:59:59-05:00", "yesterday"]
        ),
        anything,
    ),
    "Timestamp": st.one_of(
        st.sampled_from(["Mon, 23 Nov 2026 10:00:00 +0000", "9999-12-31T23:59:59-05:00"]),
        anything,
    ),
    "RecordingDuration": st.one_of(st.integers(-2, 10**7).map(str), anything),
    "SequenceNumber": st.one_of(st.integers(0, 99).map(str), anything),
    "CallDuration": st.one_of(st.integers(-1, 10**6).map(str), anything),
    "ErrorCode": st.one_of(st.sampled_from(["0", "16101", "16102"]), anything),
}
forms = st.fixed_dictionaries({}, optional=values)
paths = st.one_of(
    st.sampled_from([*WEBHOOKS, "/healthz"]),
    # A path of its own (the test client takes "?" and "#" as the URL's other parts).
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"),
        min_size=1,
        max_size=40,
    ).map(lambda p: "/twilio/" + p),
)
signing = st.sampled_from(["none", "ours", "wrong-token", "wrong-url", "garbage"])
requests_ = st.tuples(
    paths, st.sampled_from(["POST", "POST", "POST", "GET"]), forms, signing, st.booleans()
)


def check(client: FlaskClient, request: tuple[str, str, dict[str, str], str, bool]) -> None:
    path, method, form, how, oversized = request
    if oversized:
        form = {**form, "Padding": "x" * (LIMIT + 1)}
    headers: dict[str, str] = {}
    if how == "ours":
        headers["X-Twilio-Signature"] = sign(PUBLIC_BASE_URL + path, form)
    elif how == "wrong-token":
        headers["X-Twilio-Signature"] = sign(PUBLIC_BASE_URL + path, form, "not-our-token")
    elif how == "wrong-url":
        headers["X-Twilio-Signature"] = sign("https://elsewhere.example" + path, form)
    elif how == "garbage":
        headers["X-Twilio-Signature"] = "AAAA"
    if method == "GET":
        response = client.get(path, query_string=form if not oversized else None)
    else:
        response = client.post(path, data=form, headers=headers)
    status = response.status_code
    assert status < 500, (status, path, how, response.get_data(as_text=True)[:300])
    if path == "/healthz":
        assert status in (200, 405)
        return
    if path not in WEBHOOKS:
        assert status in (404, 405, 413)
        return
    if method == "GET":
        assert status == 405
        return
    if oversized:
        assert status == 413, status
        return
    if how != "ours":
        assert status == 403, (status, path, how)
        assert response.mimetype == "text/plain"
        return
    if status == 403:
        # Signed by us, but naming another account (or an AccountSid of another form).
        assert form.get("AccountSid", ACCOUNT_SID).strip() != ACCOUNT_SID
        return
    if status == 400:
        assert response.mimetype == "text/plain"
        return
    if path in VOICE_ROUTES:
        assert status == 200, status
        assert response.mimetype == "text/xml"
        root = ET.fromstring(response.get_data())
        assert root.tag == "Response"
    else:
        assert status in (204, 400, 503), status


def run(client: FlaskClient, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(requests_)
    def fuzz(request: Any) -> None:
        check(client, request)

    fuzz()


def test_generated_requests_get_sound_answers(client: FlaskClient) -> None:
    run(client, 300)


@pytest.mark.long
def test_ten_thousand_generated_requests_get_sound_answers(client: FlaskClient) -> None:
    run(client, 10_000)
