"""The Twilio REST adapter against the loopback fake: auth, media, deletion, paging."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from callcenter.adapters.twilio_api import (
    CredentialsRefused,
    MediaNotFound,
    TruncatedMedia,
    TwilioApi,
    TwilioApiError,
)
from callcenter.settings import Settings
from tests.fakes.twilio_api import FakeTwilio


@pytest.fixture
def api(settings: Settings) -> TwilioApi:
    return TwilioApi(settings)


def test_media_is_streamed_from_the_api_base_url_with_basic_auth(
    api: TwilioApi, fake_twilio: FakeTwilio
) -> None:
    rec = fake_twilio.add(size=300_000)
    assert api.media_url(rec.sid).startswith(fake_twilio.base_url + "/2010-04-01/Accounts/")
    with api.stream_media(rec.sid) as media:
        assert media.content_length == rec.size
        pieces = list(media.chunks)
    assert b"".join(pieces) == rec.body()
    assert len(pieces) > 1  # streamed, not read whole
    assert fake_twilio.auth_failures == 0


def test_wrong_credentials_are_a_setting_problem_naming_the_token(
    settings: Settings, fake_twilio: FakeTwilio
) -> None:
    rec = fake_twilio.add()
    api = TwilioApi(settings.with_overrides(twilio_auth_token="wrong"))
    with pytest.raises(CredentialsRefused) as error, api.stream_media(rec.sid):
        pass
    assert "TWILIO_AUTH_TOKEN" in str(error.value) and "401" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(CredentialsRefused):
        api.delete_recording(rec.sid)
    with pytest.raises(CredentialsRefused):
        list(api.list_recordings())
    assert fake_twilio.auth_failures == 3


def test_missing_media_is_media_not_found(api: TwilioApi, fake_twilio: FakeTwilio) -> None:
    with pytest.raises(MediaNotFound), api.stream_media(fake_twilio.new_sid("RE")):
        pass


def test_truncated_media_raises_while_reading(api: TwilioApi, fake_twilio: FakeTwilio) -> None:
    rec = fake_twilio.add(size=500_000)
    fake_twilio.fail("media", rec.sid, truncate=True)
    with pytest.raises(TruncatedMedia), api.stream_media(rec.sid) as media:
        for _ in media.chunks:
            pass


def test_a_sid_that_is_not_a_recording_sid_never_reaches_a_url(api: TwilioApi) -> None:
    with pytest.raises(ValueError):
        api.media_url("RE123/../../Calls")
    with pytest.raises(ValueError):
        api.delete_recording("../Calls/CA1")


def test_delete_recording_true_then_false_when_already_gone(
    api: TwilioApi, fake_twilio: FakeTwilio
) -> None:
    rec = fake_twilio.add()
    assert api.delete_recording(rec.sid) is True
    assert rec.media_deleted
    assert api.delete_recording(rec.sid) is False


def test_delete_recording_raises_on_other_failures(api: TwilioApi, fake_twilio: FakeTwilio) -> None:
    rec = fake_twilio.add()
    fake_twilio.fail("delete", rec.sid, status=503)
    with pytest.raises(TwilioApiError) as error:
        api.delete_recording(rec.sid)
    assert error.value.status == 503
    assert not rec.media_deleted


def test_unreachable_api_is_an_error(settings: Settings) -> None:
    api = TwilioApi(settings.with_overrides(twilio_api_base_url="http://127.0.0.1:9"))
    with pytest.raises(TwilioApiError):
        api.delete_recording("RE" + "0" * 32)


def test_listing_follows_every_page(api: TwilioApi, fake_twilio: FakeTwilio) -> None:
    recs = [
        fake_twilio.add(start_time=datetime(2026, 3, day, 9, 0, tzinfo=UTC)) for day in range(1, 8)
    ]
    fake_twilio.page_size = 3

    listed = list(api.list_recordings())

    assert sorted(item["sid"] for item in listed) == sorted(r.sid for r in recs)
    assert fake_twilio.count("GET", "/Recordings.json") == 3
    assert listed[0]["sid"] == recs[-1].sid  # newest first


def test_listing_can_start_at_a_date(api: TwilioApi, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add(start_time=datetime(2026, 2, 1, tzinfo=UTC))
    new = fake_twilio.add(start_time=datetime(2026, 3, 5, tzinfo=UTC))
    fake_twilio.page_size = 1
    assert [i["sid"] for i in api.list_recordings(date_created_after=date(2026, 3, 1))] == [new.sid]


def test_a_next_page_on_another_host_is_refused(api: TwilioApi) -> None:
    with pytest.raises(TwilioApiError):
        api._next_page("https://elsewhere.example/2010-04-01/Accounts/AC/Recordings.json")
    with pytest.raises(TwilioApiError):
        api._next_page("//elsewhere.example/x")
    assert api._next_page(None) is None
