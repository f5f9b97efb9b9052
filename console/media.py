"""Short-lived signed addresses of a recording's audio, and streaming it with byte ranges.

An address is made only after `callcenter.recordings.access.grant` has committed the `accessed`
entry. It is `/api/recordings/<sid>/audio/<token>`; the token is signed with SECRET_KEY
(itsdangerous) and names the user (id and username), the recording, the purpose, the access
entry's `seq` and the expiry. Whoever holds it may use it until it expires (an `<audio>`
element sends no Authorization header), with these limits:
- an expired, altered or unreadable token, or one for another recording than the path's: 403;
- a signed-in session of a different user than the one it was made for: 403 (a shared link
  does not become another user's access);
- the access entry it names must be an `accessed` entry of that user and recording: 403;
- a recording deleted since: 410.
The audio streams from storage in pieces (never whole in memory); `Range` is answered with 206,
an unsatisfiable one with 416 and `Content-Range: bytes */SIZE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.http import parse_range_header

from callcenter.adapters.storage import Storage
from callcenter.audit.events import RetentionEvent
from callcenter.audit.models import RetentionEntry
from callcenter.recordings.access import Access
from callcenter.recordings.models import Recording
from callcenter.recordings.states import AccessPurpose, RecordingStatus

# Long enough to start listening and seek about; short enough that a copied address is stale
# by the time it could be passed on. A new listening asks again, with a reason.
ADDRESS_LIFETIME = timedelta(minutes=10)
SALT = "callcenter.recording-audio"
PIECE_BYTES = 64 * 1024
MEDIA_TYPE = "audio/wav"


class Refused(Exception):
    """The address may not be used; `code` is the HTTP status, the message says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Grant:
    """What a valid token says."""

    user_id: int
    username: str
    recording_sid: str
    purpose: AccessPurpose
    entry_seq: int
    expires_at: datetime


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def make_token(
    secret_key: str, access: Access, *, user_id: int, now: datetime
) -> tuple[str, datetime]:
    """Sign an address token for a granted access; return it and when it expires."""
    expires_at = (now + ADDRESS_LIFETIME).astimezone(UTC).replace(microsecond=0)
    token = _serializer(secret_key).dumps(
        {
            "u": user_id,
            "n": access.actor,
            "r": access.recording_sid,
            "p": str(access.purpose),
            "e": access.entry_seq,
            "x": int(expires_at.timestamp()),
        }
    )
    return token, expires_at


def read_token(secret_key: str, token: str, *, recording_sid: str, now: datetime) -> Grant:
    """Return what a token grants, or raise Refused(403) when it is bad, altered or expired."""
    try:
        data = _serializer(secret_key).loads(token)
        grant = Grant(
            user_id=int(data["u"]),
            username=str(data["n"]),
            recording_sid=str(data["r"]),
            purpose=AccessPurpose(data["p"]),
            entry_seq=int(data["e"]),
            expires_at=datetime.fromtimestamp(int(data["x"]), UTC),
        )
    except (BadSignature, KeyError, TypeError, ValueError):
        raise Refused(403, "this address is not valid (altered or incomplete)") from None
    if grant.recording_sid != recording_sid:
        raise Refused(403, "this address is for another recording")
    if now >= grant.expires_at:
        raise Refused(403, "this address has expired; ask again, with a reason")
    return grant


def check_grant(session: Session, grant: Grant) -> str:
    """Check the access entry and the recording a grant names; return the storage key."""
    entry = session.execute(
        select(RetentionEntry.event, RetentionEntry.recording_sid, RetentionEntry.actor).where(
            RetentionEntry.seq == grant.entry_seq
        )
    ).first()
    if entry is None or tuple(entry) != (
        RetentionEvent.ACCESSED,
        grant.recording_sid,
        grant.username,
    ):
        raise Refused(403, "this address names no access on the record")
    recording = session.execute(
        select(Recording.status, Recording.storage_key, Recording.deleted_at).where(
            Recording.recording_sid == grant.recording_sid
        )
    ).first()
    if recording is None or recording[2] is not None or recording[0] == RecordingStatus.DELETED:
        raise Refused(410, "the recording has been deleted")
    if recording[0] != RecordingStatus.STORED or not recording[1]:
        raise Refused(410, "the recording has no stored audio")
    return str(recording[1])


@dataclass(frozen=True)
class Answer:
    """What to send: status, headers, and the pieces of the body."""

    status: int
    headers: dict[str, str]
    body: Iterable[bytes]


class _Pieces:
    """The body: an object read a piece at a time; closed by the server when the answer ends.

    A class and not a generator, so that an answer never iterated (HEAD, a client gone before
    the first byte) still closes the file or the S3 connection at once.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source

    def __iter__(self) -> Iterator[bytes]:
        while piece := self._source.read(PIECE_BYTES):
            yield piece

    def close(self) -> None:
        self._source.close()


def _nothing() -> Iterable[bytes]:
    return ()


def answer(storage: Storage, key: str, *, range_header: str | None, grant: Grant) -> Answer:
    """Answer a GET of the audio: all of it (200), a range (206), or 416; raise Refused(410)."""
    size = storage.size(key)
    if size is None:
        raise Refused(410, "the recording's audio is missing from storage")
    headers: dict[str, Any] = {"Accept-Ranges": "bytes", "Content-Type": MEDIA_TYPE}
    if grant.purpose == AccessPurpose.DOWNLOAD:
        headers["Content-Disposition"] = f'attachment; filename="{grant.recording_sid}.wav"'
    else:
        headers["Content-Disposition"] = f'inline; filename="{grant.recording_sid}.wav"'
    asked = parse_range_header(range_header) if range_header else None
    # A Range we cannot read, or several ranges at once, is ignored: the whole object (RFC 9110).
    if asked is not None and len(asked.ranges) == 1 and asked.units == "bytes":
        span = asked.range_for_length(size)
        if span is None:
            headers["Content-Range"] = f"bytes */{size}"
            headers["Content-Length"] = "0"
            return Answer(416, headers, _nothing())
        start, stop = span
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["Content-Length"] = str(stop - start)
        return Answer(206, headers, _Pieces(storage.open_range(key, start, stop - 1)))
    headers["Content-Length"] = str(size)
    if size == 0:
        return Answer(200, headers, _nothing())
    return Answer(200, headers, _Pieces(storage.open(key)))
