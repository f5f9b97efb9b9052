"""`callcenter twilio configure`: the number's webhooks set at Twilio, and checked for drift."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cli import Result, run
from tests.conftest import PUBLIC_BASE_URL
from tests.fakes.twilio_api import FakeTwilio, fake_twilio

__all__ = ["fake_twilio"]

Cli = Callable[..., Result]
NUMBER = "+37167000001"
WANTED = {
    "voice_url": PUBLIC_BASE_URL + "/twilio/voice",
    "voice_method": "POST",
    "voice_fallback_url": PUBLIC_BASE_URL + "/twilio/voice/fallback",
    "voice_fallback_method": "POST",
    "status_callback": PUBLIC_BASE_URL + "/twilio/voice/status",
    "status_callback_method": "POST",
}


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    fake_twilio: FakeTwilio,
) -> Cli:
    env = {**env, "TWILIO_API_BASE_URL": fake_twilio.base_url}
    return lambda *args, **kw: run(capsys, monkeypatch, env, *args, **kw)


def test_configure_sets_the_voice_fallback_and_status_urls_with_post(
    cli: Cli, fake_twilio: FakeTwilio
) -> None:
    number = fake_twilio.add_number(
        NUMBER, voice_url="https://old.example/voice", voice_method="GET"
    )
    other = fake_twilio.add_number("+37167000002")
    result = cli("twilio", "configure", "67000001")
    assert result.code == 0, result.err
    assert f"{NUMBER} VoiceUrl: https://old.example/voice -> {WANTED['voice_url']}" in result.out
    assert {k: number[k] for k in WANTED} == WANTED
    # Found by PhoneNumber; the account's other numbers are left alone.
    assert other["voice_url"] is None
    assert fake_twilio.count("POST", f"/IncomingPhoneNumbers/{number['sid']}.json") == 1
    # Once configured, --check finds nothing and changes nothing.
    checked = cli("twilio", "configure", NUMBER, "--check")
    assert checked.code == 0, checked.err
    assert "is configured" in checked.out
    again = cli("twilio", "configure", NUMBER)
    assert (again.code, fake_twilio.count("POST", ".json")) == (0, 1)


def test_check_prints_each_difference_exits_1_and_changes_nothing(
    cli: Cli, fake_twilio: FakeTwilio
) -> None:
    number = fake_twilio.add_number(
        NUMBER, **{**WANTED, "voice_fallback_url": None, "status_callback_method": "GET"}
    )
    result = cli("twilio", "configure", NUMBER, "--check")
    assert result.code == 1
    assert result.out.splitlines() == [
        f"{NUMBER} VoiceFallbackUrl: (not set) -> {WANTED['voice_fallback_url']}",
        f"{NUMBER} StatusCallbackMethod: GET -> POST",
    ]
    assert number["voice_fallback_url"] is None
    assert fake_twilio.count("POST", ".json") == 0


def test_a_number_the_account_does_not_have_is_one_clear_line(
    cli: Cli, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_number("+37167000002")
    result = cli("twilio", "configure", NUMBER)
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        f"callcenter: the Twilio account {fake_twilio.account_sid} has no number {NUMBER}"
    ]


def test_api_failures_and_bad_numbers_are_one_line(cli: Cli, fake_twilio: FakeTwilio) -> None:
    bad = cli("twilio", "configure", "12")
    assert bad.code != 0 and len(bad.err.strip().splitlines()) == 1
    fake_twilio.auth_token = "another-token"
    refused = cli("twilio", "configure", NUMBER)
    assert refused.code == 1
    assert refused.err.strip().splitlines() == [
        "callcenter: Twilio's API: number lookup answered 401"
    ]
