"""Rules every Twilio webhook shares: the signature, and whose account a request is about."""

from __future__ import annotations

import pytest

from tests.conftest import TwilioPost
from webhooks import paths

OURS = "AC00000000000000000000000000000001"
THEIRS = "AC" + "9" * 32
CALL = "CA" + "1" * 32

EVERY_WEBHOOK = [
    paths.VOICE,
    paths.FALLBACK,
    paths.DIAL_COMPLETE,
    paths.STATUS,
    paths.WHISPER,
    paths.CALLBACK_REQUEST,
    paths.RECORDING_STATUS,
]


def _form(account: str) -> dict[str, str]:
    return {
        "AccountSid": account,
        "CallSid": CALL,
        "From": "+37120000009",
        "To": "+37167000001",
        "CallStatus": "ringing",
        "DialCallStatus": "completed",
        "RecordingSid": "RE" + "2" * 32,
        "RecordingStatus": "completed",
        "RecordingStartTime": "Mon, 30 Nov 2026 10:00:00 +0000",
    }


@pytest.mark.parametrize("path", EVERY_WEBHOOK)
def test_a_signed_request_about_another_account_is_refused_403_on_every_webhook(
    twilio_post: TwilioPost, path: str
) -> None:
    assert twilio_post(path, _form(THEIRS)).status_code == 403


@pytest.mark.parametrize("path", EVERY_WEBHOOK)
def test_an_unsigned_request_is_refused_403_on_every_webhook(
    twilio_post: TwilioPost, path: str
) -> None:
    assert twilio_post(path, _form(OURS), signature="not-a-signature").status_code == 403


@pytest.mark.parametrize("path", EVERY_WEBHOOK)
def test_our_account_passes_the_account_rule(twilio_post: TwilioPost, path: str) -> None:
    assert twilio_post(path, _form(OURS)).status_code in (200, 204)
