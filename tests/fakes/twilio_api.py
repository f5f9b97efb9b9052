"""A real loopback fake of Twilio's REST API for recordings, with failures you can switch on.

It is an HTTP server on 127.0.0.1 (a random port) that the code under test reaches through
TWILIO_API_BASE_URL, exactly as it would reach api.twilio.com: no function is patched.

Serves, for one account (basic auth with the account SID and auth token, else 401):
- `GET  /2010-04-01/Accounts/{Sid}/Recordings/{RecordingSid}.wav`   the media (WAV);
- `DELETE /2010-04-01/Accounts/{Sid}/Recordings/{RecordingSid}.json` 204, 404 if already gone;
- `GET  /2010-04-01/Accounts/{Sid}/Recordings.json?PageSize=N`      the list, newest first,
  paged through `next_page_uri` (honours `DateCreated>`);
- `GET  /2010-04-01/Accounts/{Sid}/IncomingPhoneNumbers.json?PhoneNumber=E164` the account's
  numbers matching exactly (all of them without the filter);
- `POST /2010-04-01/Accounts/{Sid}/IncomingPhoneNumbers/{PNSid}.json` form fields VoiceUrl,
  VoiceMethod, VoiceFallbackUrl, VoiceFallbackMethod, StatusCallback, StatusCallbackMethod
  (and any other) update the number; 404 for a number the account does not have.

Knobs (all may be changed while the server runs):
- `add(sid=None, *, size=..., media=..., status=..., start_time=..., ...)` adds a recording and
  returns its `FakeRecording` (media is deterministic WAV bytes of `size` unless `media` given;
  `rec.sha256()` and `rec.body()` tell what a correct copy holds). `new_sid("RE")`/`new_call_sid()`.
- `fail(kind, sid=None, *, status=None, truncate=False, delay=0.0, times=1)` queues a failure
  for the next `times` matching requests; `kind` is "media", "delete" or "list"; `sid=None`
  matches any recording. `status=404`/`500`/... answers that status; `truncate=True` sends a
  full Content-Length but only half the body, then closes the connection; `delay` sleeps that
  many seconds before answering (pair it with a short client timeout to get a timeout).
- `page_size`: overrides the PageSize the client asks for (to test paging with few items).
- `requests`: every (method, path) received, in order; `auth_failures`: refused requests.
- `serve_unknown`: when True, media of a recording SID never added is made on first request.
- `rec.media_deleted` becomes True on a successful DELETE (the listing then says "deleted").
- `add_number(e164, **properties)` adds a phone number (properties in Twilio's JSON names,
  like `voice_url="..."`) and returns its dict; `numbers` holds them by SID.

Use it as the `fake_twilio` fixture (import it into a conftest) or as a context manager:
`with FakeTwilio(account_sid, auth_token) as fake: ...`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import random
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.sids import new_sid

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"

# WAV as Twilio writes it: 8 kHz, 16-bit PCM; dual-channel recordings have two channels.
SAMPLE_RATE = 8000
BITS = 16
_BLOCK = 64 * 1024


def wav_header(data_size: int, channels: int = 2) -> bytes:
    """Return a 44-byte PCM WAV header for `data_size` bytes of samples."""
    byte_rate = SAMPLE_RATE * channels * BITS // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, SAMPLE_RATE, byte_rate, channels * 2, BITS)
        + b"data"
        + struct.pack("<I", data_size)
    )


def rfc2822(at: datetime) -> str:
    return email.utils.format_datetime(at.astimezone(UTC), usegmt=False).replace("-0000", "+0000")


@dataclass
class FakeRecording:
    sid: str
    call_sid: str
    size: int = 48_044
    channels: int = 2
    status: str = "completed"
    # Recent by default: recordings past their retention are the sweep's, not ingestion's.
    start_time: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    )
    date_created: datetime | None = None
    media: bytes | None = None
    source: str = "DialVerb"
    media_deleted: bool = False

    def __post_init__(self) -> None:
        if self.media is not None:
            self.size = len(self.media)
        if self.date_created is None:
            self.date_created = self.start_time + timedelta(seconds=self.duration + 1)

    @property
    def duration(self) -> int:
        byte_rate = SAMPLE_RATE * self.channels * BITS // 8
        return max(self.size - 44, 0) // byte_rate

    def chunks(self) -> Iterator[bytes]:
        """Yield the media: a WAV header, then deterministic noise (never held whole)."""
        if self.media is not None:
            for start in range(0, len(self.media), _BLOCK):
                yield self.media[start : start + _BLOCK]
            return
        header = wav_header(max(self.size - 44, 0), self.channels)[: self.size]
        yield header
        remaining = self.size - len(header)
        block = random.Random(self.sid).randbytes(_BLOCK)
        counter = 0
        while remaining > 0:
            # Vary each block so that a misplaced block changes the checksum.
            piece = struct.pack("<Q", counter) + block[8:]
            yield piece[: min(remaining, _BLOCK)]
            remaining -= min(remaining, _BLOCK)
            counter += 1

    def body(self) -> bytes:
        return b"".join(self.chunks())

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def as_json(self, account_sid: str) -> dict[str, Any]:
        assert self.date_created is not None
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "call_sid": self.call_sid,
            "status": "deleted" if self.media_deleted else self.status,
            "start_time": rfc2822(self.start_time),
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_created),
            "duration": str(self.duration),
            "channels": self.channels,
            "source": self.source,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Recordings/{self.sid}.json",
        }


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a timeout, a crash under test) is expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Fault:
    kind: str
    sid: str | None
    status: int | None
    truncate: bool
    delay: float
    times: int


class FakeTwilio:
    """Twilio's recordings API on loopback; see the module docstring for the knobs."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.recordings: dict[str, FakeRecording] = {}
        self.numbers: dict[str, dict[str, Any]] = {}
        # Serve media for any recording SID asked for (a simulated call in another process
        # reported it): the recording is made on first request.
        self.serve_unknown = False
        self.faults: list[Fault] = []
        self.page_size: int | None = None
        self.requests: list[tuple[str, str]] = []
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTwilio:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs ---------------------------------------------------------------------------

    new_sid = staticmethod(new_sid)

    @staticmethod
    def new_call_sid() -> str:
        return new_sid("CA")

    def add(self, sid: str | None = None, **kwargs: Any) -> FakeRecording:
        kwargs.setdefault("call_sid", new_sid("CA"))
        rec = FakeRecording(sid=sid or new_sid("RE"), **kwargs)
        with self._lock:
            self.recordings[rec.sid] = rec
        return rec

    def add_number(self, phone_number: str, **properties: Any) -> dict[str, Any]:
        sid = new_sid("PN")
        number = {
            "sid": sid,
            "account_sid": self.account_sid,
            "phone_number": phone_number,
            "friendly_name": phone_number,
            "voice_url": None,
            "voice_method": "POST",
            "voice_fallback_url": None,
            "voice_fallback_method": "POST",
            "status_callback": None,
            "status_callback_method": "POST",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers/{sid}.json",
            **properties,
        }
        with self._lock:
            self.numbers[sid] = number
        return number

    def fail(
        self,
        kind: str,
        sid: str | None = None,
        *,
        status: int | None = None,
        truncate: bool = False,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        assert kind in ("media", "delete", "list")
        with self._lock:
            self.faults.append(Fault(kind, sid, status, truncate, delay, times))

    def count(self, method: str, suffix: str) -> int:
        """Count received requests whose path ends with `suffix`."""
        return sum(1 for m, p in self.requests if m == method and p.endswith(suffix))

    def _take_fault(self, kind: str, sid: str | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind == kind and fault.times > 0 and fault.sid in (None, sid):
                    fault.times -= 1
                    return fault
        return None


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as Twilio's API does: the client's connection reuse is exercised too.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle on, the second waits for the
        # client's delayed ACK (40 ms a request on Linux loopback).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _authorized(self) -> bool:
            expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
            return self.headers.get("Authorization", "") == f"Basic {expected}"

        def _send_json(self, status: int, body: dict[str, Any] | None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[str, str | None, dict[str, list[str]]] | None:
            parts = urlsplit(self.path)
            prefix = f"/2010-04-01/Accounts/{fake.account_sid}/"
            if not parts.path.startswith(prefix):
                return None
            rest = parts.path[len(prefix) :]
            query = parse_qs(parts.query)
            if rest == "Recordings.json":
                return "list", None, query
            if rest == "IncomingPhoneNumbers.json":
                return "numbers", None, query
            if rest.startswith("IncomingPhoneNumbers/") and rest.endswith(".json"):
                return "number", rest[len("IncomingPhoneNumbers/") : -len(".json")], query
            if rest.startswith("Recordings/") and rest.endswith(".wav"):
                return "media", rest[len("Recordings/") : -len(".wav")], query
            if rest.startswith("Recordings/") and rest.endswith(".json"):
                return "recording", rest[len("Recordings/") : -len(".json")], query
            return None

        def _common(self, method: str) -> tuple[str, str | None, dict[str, list[str]]] | None:
            fake.requests.append((method, urlsplit(self.path).path))
            if not self._authorized():
                fake.auth_failures += 1
                self._send_json(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return None
            route = self._route()
            if route is None:
                self._send_json(404, {"code": 20404, "message": "Not found", "status": 404})
            return route

        def _apply(self, fault: Fault | None) -> bool:
            """Apply a queued fault; True when it answered already."""
            if fault is None:
                return False
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                self._send_json(fault.status, {"status": fault.status, "message": "fault"})
                return True
            return False

        def do_GET(self) -> None:
            route = self._common("GET")
            if route is None:
                return
            kind, sid, query = route
            if kind == "media":
                self._media(sid or "")
            elif kind == "list":
                self._list(query)
            elif kind == "numbers":
                wanted = query.get("PhoneNumber", [None])[0]
                found = [n for n in fake.numbers.values() if wanted in (None, n["phone_number"])]
                self._send_json(200, {"incoming_phone_numbers": found, "page": 0})
            else:
                self._send_json(405, {"status": 405})

        def do_POST(self) -> None:
            route = self._common("POST")
            if route is None:
                return
            kind, sid, _query = route
            length = int(self.headers.get("Content-Length") or 0)
            fields = parse_qs(self.rfile.read(length).decode())
            if kind != "number" or sid is None:
                self._send_json(405, {"status": 405})
                return
            number = fake.numbers.get(sid)
            if number is None:
                self._send_json(404, {"code": 20404, "message": "Not found", "status": 404})
                return
            for form_name, values in fields.items():
                # VoiceFallbackUrl -> voice_fallback_url, as Twilio's JSON names it.
                name = "".join(f"_{c.lower()}" if c.isupper() else c for c in form_name)
                name = name.lstrip("_")
                number[name] = values[-1]
            self._send_json(200, number)

        def _media(self, sid: str) -> None:
            rec = fake.recordings.get(sid)
            if rec is None and fake.serve_unknown and sid.startswith("RE"):
                rec = fake.add(sid)
            fault = fake._take_fault("media", sid)
            if self._apply(fault):
                return
            if rec is None or rec.media_deleted:
                self._send_json(404, {"code": 20404, "message": "Not found", "status": 404})
                return
            self.send_response(200)
            self.send_header("Content-Type", "audio/x-wav")
            self.send_header("Content-Length", str(rec.size))
            self.end_headers()
            limit = rec.size // 2 if fault is not None and fault.truncate else rec.size
            sent = 0
            for chunk in rec.chunks():
                piece = chunk[: limit - sent]
                if piece:
                    self.wfile.write(piece)
                    sent += len(piece)
                if sent >= limit:
                    break
            if limit < rec.size:
                # Hang up mid-body: the client sees fewer bytes than Content-Length promised.
                self.wfile.flush()
                self.close_connection = True

        def _list(self, query: dict[str, list[str]]) -> None:
            fault = fake._take_fault("list", None)
            if self._apply(fault):
                return
            size = fake.page_size or int(query.get("PageSize", ["50"])[0])
            page = int(query.get("Page", ["0"])[0])
            after = query.get("DateCreated>", [None])[0]
            items = sorted(
                fake.recordings.values(),
                key=lambda r: (r.date_created or r.start_time, r.sid),
                reverse=True,
            )
            if after:
                floor = datetime.fromisoformat(after).replace(tzinfo=UTC)
                items = [r for r in items if r.date_created and r.date_created >= floor]
            chunk = items[page * size : (page + 1) * size]
            base = f"/2010-04-01/Accounts/{fake.account_sid}/Recordings.json"
            next_uri = None
            if (page + 1) * size < len(items):
                next_uri = f"{base}?PageSize={size}&Page={page + 1}&PageToken=PA{page + 1}"
                if after:
                    next_uri += f"&DateCreated%3E={after}"
            self._send_json(
                200,
                {
                    "recordings": [r.as_json(fake.account_sid) for r in chunk],
                    "page": page,
                    "page_size": size,
                    "uri": f"{base}?PageSize={size}&Page={page}",
                    "first_page_uri": f"{base}?PageSize={size}&Page=0",
                    "next_page_uri": next_uri,
                    "previous_page_uri": None,
                },
            )

        def do_DELETE(self) -> None:
            route = self._common("DELETE")
            if route is None:
                return
            kind, sid, _query = route
            if kind != "recording" or sid is None:
                self._send_json(405, {"status": 405})
                return
            if self._apply(fake._take_fault("delete", sid)):
                return
            rec = fake.recordings.get(sid)
            if rec is None or rec.media_deleted:
                self._send_json(404, {"code": 20404, "message": "Not found", "status": 404})
                return
            rec.media_deleted = True
            self._send_json(204, None)

    return Handler


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A running fake Twilio API for this test (point TWILIO_API_BASE_URL at `.base_url`)."""
    with FakeTwilio() as fake:
        yield fake
