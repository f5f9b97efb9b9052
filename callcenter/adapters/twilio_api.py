"""The Twilio REST adapter: the one home of calls to Twilio's API.

Everything goes to TWILIO_API_BASE_URL with the account's credentials, media included: the
host in a callback's `RecordingUrl` is never trusted. `requests` with one Session keeps the
connections alive across a batch; every call has an explicit timeout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import requests

from callcenter.settings import Settings, SettingsError

API_VERSION = "2010-04-01"
# Twilio's webhooks give up after 15 s; its API is usually quick. Connect fast, read patiently:
# a 50 MB recording must not be cut off, but a stalled socket must not hang a worker forever.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
MEDIA_CHUNK_BYTES = 256 * 1024
LIST_PAGE_SIZE = 1000

RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")


class TwilioApiError(Exception):
    """Twilio's API failed or answered what we cannot use; `status` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CredentialsRefused(SettingsError):
    """Twilio's API answered 401: the account's credentials are wrong, not Twilio down.

    A setting problem, said in one line naming the settings; never retried as a temporary error.
    """

    def __init__(self, what: str) -> None:
        super().__init__(
            "TWILIO_AUTH_TOKEN",
            f"Twilio's API refused the credentials (401) for {what}: "
            "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        )


def _refused(response: requests.Response, what: str) -> None:
    if response.status_code == 401:
        raise CredentialsRefused(what)


class MediaNotFound(TwilioApiError):
    """The media answered 404: not there yet (it lags the callback) or deleted."""


class TruncatedMedia(TwilioApiError):
    """The media body ended before its Content-Length."""


@dataclass
class Media:
    """A media download in progress: its announced length (if any) and its bytes in chunks."""

    content_length: int | None
    chunks: Iterator[bytes]


def check_recording_sid(sid: str) -> str:
    """Return the SID if it looks like a recording SID; it goes into a URL path."""
    if not RECORDING_SID.match(sid):
        raise ValueError(f"not a recording SID: {sid!r}")
    return sid


class TwilioApi:
    """Twilio's REST API for one account."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    ) -> None:
        self.account_sid = settings.require("TWILIO_ACCOUNT_SID")
        token = settings.require("TWILIO_AUTH_TOKEN")
        self.base_url = settings.twilio_api_base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.auth = (self.account_sid, token)
        self.session.headers["User-Agent"] = "callcenter-recordings/1"

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/{path}"

    def media_url(self, recording_sid: str) -> str:
        return self._url(f"Recordings/{check_recording_sid(recording_sid)}.wav")

    @contextmanager
    def stream_media(self, recording_sid: str) -> Iterator[Media]:
        """Open the recording's WAV media for streaming.

        Raises MediaNotFound on 404, TwilioApiError on other failures (HTTP errors, timeouts,
        broken connections); iterating the chunks raises TruncatedMedia when the body ends
        before its Content-Length. The connection is released when the block ends.
        """
        try:
            response = self.session.get(
                self.media_url(recording_sid),
                stream=True,
                timeout=self.timeout,
                # Content-Length must count the bytes we store, not a compressed form of them.
                headers={"Accept-Encoding": "identity"},
            )
        except requests.RequestException as exc:
            raise TwilioApiError(f"media request failed: {type(exc).__name__}") from exc
        with response:
            _refused(response, "a media download")
            if response.status_code == 404:
                raise MediaNotFound("media not found (404)", status=404)
            if response.status_code != 200:
                raise TwilioApiError(
                    f"media request answered {response.status_code}", status=response.status_code
                )
            length = _content_length(response)
            yield Media(length, _chunks(response, length))

    def delete_recording(self, recording_sid: str) -> bool:
        """Delete Twilio's copy of a recording; False when it was already gone (404)."""
        url = self._url(f"Recordings/{check_recording_sid(recording_sid)}.json")
        try:
            response = self.session.delete(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TwilioApiError(f"deletion failed: {type(exc).__name__}") from exc
        with response:
            _refused(response, "a deletion")
            if response.status_code == 404:
                return False
            if response.status_code not in (200, 204):
                raise TwilioApiError(
                    f"deletion answered {response.status_code}", status=response.status_code
                )
        return True

    def list_recordings(self, date_created_after: date | None = None) -> Iterator[dict[str, Any]]:
        """Yield every recording of the account, newest first, following Twilio's pages."""
        params: dict[str, Any] | None = {"PageSize": LIST_PAGE_SIZE}
        if date_created_after is not None:
            assert params is not None
            params["DateCreated>"] = date_created_after.isoformat()
        url: str | None = self._url("Recordings.json")
        while url is not None:
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                raise TwilioApiError(f"listing failed: {type(exc).__name__}") from exc
            with response:
                _refused(response, "the recordings list")
                if response.status_code != 200:
                    raise TwilioApiError(
                        f"listing answered {response.status_code}", status=response.status_code
                    )
                try:
                    page = response.json()
                except ValueError as exc:
                    raise TwilioApiError("listing answered something other than JSON") from exc
            yield from page.get("recordings", [])
            url = self._next_page(page.get("next_page_uri"))
            # The next page's URI carries every parameter already.
            params = None

    # Phone numbers (IncomingPhoneNumbers) -----------------------------------------------

    def find_number(self, phone_number: str) -> dict[str, Any] | None:
        """Return the account's IncomingPhoneNumber for an E.164 number, or None.

        `GET IncomingPhoneNumbers.json?PhoneNumber=...` filters the account's numbers by an
        exact match; the answer lists them under `incoming_phone_numbers`.
        """
        url = self._url("IncomingPhoneNumbers.json")
        page = self._json("GET", url, params={"PhoneNumber": phone_number}, what="number lookup")
        for item in page.get("incoming_phone_numbers", []):
            if item.get("phone_number") == phone_number:
                return dict(item)
        return None

    def update_number(self, sid: str, fields: dict[str, str]) -> dict[str, Any]:
        """Set fields of an IncomingPhoneNumber (`POST IncomingPhoneNumbers/{Sid}.json`, form
        fields named as Twilio names them: VoiceUrl, VoiceMethod, VoiceFallbackUrl, ...)."""
        if not re.match(r"^PN[0-9a-fA-F]{32}$", sid):
            raise TwilioApiError(f"not a phone number SID: {sid!r}")
        url = self._url(f"IncomingPhoneNumbers/{sid}.json")
        return self._json("POST", url, data=fields, what="number update")

    def _json(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise TwilioApiError(f"{what} failed: {type(exc).__name__}") from exc
        with response:
            if response.status_code != 200:
                raise TwilioApiError(
                    f"{what} answered {response.status_code}", status=response.status_code
                )
            try:
                body = response.json()
            except ValueError as exc:
                raise TwilioApiError(f"{what} answered something other than JSON") from exc
        if not isinstance(body, dict):
            raise TwilioApiError(f"{what} answered something other than a JSON object")
        return body

    def _next_page(self, uri: object) -> str | None:
        if not uri:
            return None
        if not isinstance(uri, str) or not uri.startswith("/") or urlsplit(uri).netloc:
            # Credentials only ever go to TWILIO_API_BASE_URL, whatever a page says.
            raise TwilioApiError(f"unexpected next_page_uri {uri!r}")
        return self.base_url + uri

    def close(self) -> None:
        self.session.close()


def _content_length(response: requests.Response) -> int | None:
    raw = response.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise TwilioApiError(f"media has a malformed Content-Length {raw!r}") from None
    if value < 0:
        raise TwilioApiError(f"media has a negative Content-Length {raw!r}")
    return value


def _chunks(response: requests.Response, length: int | None) -> Iterator[bytes]:
    """Yield the body in chunks; raise if it is cut short or the connection breaks."""
    received = 0
    try:
        for chunk in response.iter_content(chunk_size=MEDIA_CHUNK_BYTES):
            received += len(chunk)
            yield chunk
    except requests.RequestException as exc:
        # urllib3 itself notices a body shorter than its Content-Length and raises here.
        if length is not None and received < length:
            raise TruncatedMedia(
                f"media ended after {received} of {length} bytes", status=200
            ) from exc
        raise TwilioApiError(f"media download broke off: {type(exc).__name__}") from exc
    if length is not None and received != length:
        raise TruncatedMedia(f"media gave {received} bytes, announced {length}", status=200)
