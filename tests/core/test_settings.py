"""Settings: a missing or malformed value stops the process with one line naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from callcenter.settings import SettingsError, for_web, load

GOOD = {
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "token",
    "PUBLIC_BASE_URL": "https://calls.example.lv",
    "SECRET_KEY": "s",
}


def test_defaults_are_the_contracts() -> None:
    settings = load({})
    assert settings.database_url == "sqlite:///var/callcenter.db"
    assert settings.recordings_url == "file:var/recordings"
    assert settings.twilio_api_base_url == "https://api.twilio.com"
    assert str(settings.timezone) == "Europe/Riga"
    assert settings.retention_months == 3
    assert settings.notice_languages[0].language == "lv-LV"


def test_postgres_urls_get_the_psycopg_driver() -> None:
    assert load({"DATABASE_URL": "postgres://u@h/db"}).database_url == "postgresql+psycopg://u@h/db"
    assert load({"DATABASE_URL": "postgresql://u@h/db"}).database_url == (
        "postgresql+psycopg://u@h/db"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://u@h/db"),
        ("DATABASE_URL", "sqlitefoo://x"),
        # A driver that is not installed is named at start, not on the first call.
        ("DATABASE_URL", "postgresql+nosuchdriver://u@h/db"),
        ("RECORDINGS_URL", "ftp://x"),
        ("RECORDINGS_URL", "s3://"),
        ("RECORDINGS_URL", "file:"),
        ("TWILIO_ACCOUNT_SID", "AC123"),
        ("TWILIO_API_BASE_URL", "api.twilio.com"),
        ("PUBLIC_BASE_URL", "http://calls.example.lv"),
        ("PUBLIC_BASE_URL", "https://calls.example.lv/?x=1"),
        ("CALLCENTER_TIMEZONE", "Europe/Nowhere"),
        ("RETENTION_MONTHS", "three"),
        ("RETENTION_MONTHS", "0"),
        ("RETENTION_MONTHS", "-3"),
        ("FALLBACK_NUMBER", "12"),
        ("CALENDAR_MOVED_DAYS_OFF", "maybe"),
        ("NOTICE_LANGUAGES", "english"),
        ("NOTICE_LANGUAGES", "de-DE"),
        ("S3_SERVER_SIDE_ENCRYPTION", "rot13"),
    ],
)
def test_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load({**GOOD, name: value})
    message = str(caught.value)
    assert "\n" not in message
    expected = "NOTICE_TEXT_DE_DE" if value == "de-DE" else name
    assert expected in message


@pytest.mark.parametrize(
    "missing", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL", "SECRET_KEY"]
)
def test_web_process_requires_twilio_and_public_address(missing: str) -> None:
    env = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        for_web(load(env))


def test_further_notice_languages_follow_latvian() -> None:
    settings = load({**GOOD, "NOTICE_LANGUAGES": "en-GB, ru-RU"})
    assert [n.language for n in settings.notice_languages] == ["lv-LV", "en-GB", "ru-RU"]


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "callcenter", "staff", "list"],
        ["-c", "import callcenter.wsgi"],
    ],
)
def test_process_stops_with_one_line_not_a_traceback(command: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "RETENTION_MONTHS": "lots", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, *command],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["callcenter: setting RETENTION_MONTHS: must be a whole number, got 'lots'"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_API_BASE_URL", "http://user:s3cret@api.twilio.com"),
        ("PUBLIC_BASE_URL", "ftp://admin:s3cret@calls.example.lv"),
        ("NOTICE_AUDIO_URL", "gopher://u:s3cret@example.lv/a.mp3"),
        ("DATABASE_URL", "nonsense-u:s3cret@db"),
        ("RECORDINGS_URL", "ftp://u:s3cret@bucket"),
    ],
)
def test_a_malformed_url_setting_is_named_without_its_credentials(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load({name: value})
    assert name in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_the_twilio_api_is_reached_over_tls_except_on_loopback() -> None:
    with pytest.raises(SettingsError, match="TWILIO_API_BASE_URL"):
        load({"TWILIO_API_BASE_URL": "http://api.twilio.com"})
    for loopback in ("http://127.0.0.1:8089", "http://localhost:1"):
        assert load({"TWILIO_API_BASE_URL": loopback}).twilio_api_base_url == loopback
