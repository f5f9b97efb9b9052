"""Fixtures for the recording lifecycle: the fake Twilio API and S3 wired into the settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from werkzeug.test import TestResponse

from callcenter.runtime import Runtime
from callcenter.settings import Settings, load
from tests.fakes.s3 import aws_env, moto_server, s3_bucket, s3_client, s3_versioned_bucket
from tests.fakes.twilio_api import FakeRecording, FakeTwilio, fake_twilio, rfc2822

__all__ = [
    "aws_env",
    "fake_twilio",
    "moto_server",
    "s3_bucket",
    "s3_client",
    "s3_versioned_bucket",
]

# The webhook stamps rows with the real clock; jobs in tests run at this `now`, later, and move
# it forward instead of sleeping. It is fixed when the tests are collected, so it must stay
# ahead of the real clock for the whole run: a minute was not enough once the suite on
# PostgreSQL reached these tests more than a minute after collection (the webhook's rows were
# then "not due yet" at NOW and nothing was ingested).
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


@pytest.fixture
def env(env: dict[str, str], fake_twilio: FakeTwilio) -> dict[str, str]:
    """The shared environment, with Twilio's API served by the fake."""
    fake_twilio.account_sid = env["TWILIO_ACCOUNT_SID"]
    fake_twilio.auth_token = env["TWILIO_AUTH_TOKEN"]
    return {**env, "TWILIO_API_BASE_URL": fake_twilio.base_url}


@pytest.fixture
def s3_settings(env: dict[str, str], aws_env: str, s3_versioned_bucket: str) -> Settings:
    """Settings that keep recordings in a versioned moto bucket under a prefix."""
    return load({**env, "RECORDINGS_URL": f"s3://{s3_versioned_bucket}/audio"})


@pytest.fixture
def s3_runtime(s3_settings: Settings, engine: Any) -> Runtime:
    return Runtime(s3_settings, _engine=engine)


def callback_form(rec: FakeRecording, account_sid: str, **overrides: Any) -> dict[str, Any]:
    """The form Twilio posts to recordingStatusCallback for `rec`."""
    form: dict[str, Any] = {
        "AccountSid": account_sid,
        "CallSid": rec.call_sid,
        "RecordingSid": rec.sid,
        # A host that is not Twilio's API: media must never be fetched from here.
        "RecordingUrl": f"https://media.attacker.invalid/Recordings/{rec.sid}",
        "RecordingStatus": "completed",
        "RecordingDuration": str(rec.duration),
        "RecordingChannels": str(rec.channels),
        "RecordingStartTime": rfc2822(rec.start_time),
        "RecordingSource": "DialVerb",
        "ErrorCode": "0",
    }
    form.update(overrides)
    return form


PostRecording = Callable[..., TestResponse]


@pytest.fixture
def post_recording(twilio_post: Any, settings: Settings) -> PostRecording:
    """Post the recording callback for a fake recording, signed as Twilio signs it."""

    def post(rec: FakeRecording, **overrides: Any) -> TestResponse:
        form = callback_form(rec, settings.twilio_account_sid or "", **overrides)
        response: TestResponse = twilio_post("/twilio/recording-status", form)
        return response

    return post
