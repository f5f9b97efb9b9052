"""Reasons kept beside the retention log, and who acted, in a form the log may hold.

The log is append-only and must hold no name. So:
- who acted is a handle (a console username, or an operator's handle), never a full name;
- a free-text reason (placing or releasing a hold, listening to a recording) is an `AuditNote`
  beside the chain; the entry holds its id and SHA-256. A note can be redacted on a lawful
  request, and verification tells a redaction from tampering.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.audit.models import AuditNote

MAX_NOTE_CHARS = 1_000
# A handle: letters, digits and . _ @ -, no spaces, so that a full name cannot pass as one.
HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")


class NoteError(ValueError):
    """A reason or an actor cannot go into the record; the message says why, in one line."""


def handle(actor: str, *, what: str = "who acted") -> str:
    """Return `actor` if it is a handle the log may hold; raise NoteError otherwise."""
    actor = actor.strip()
    if not actor:
        raise NoteError(f"{what} is required")
    if not HANDLE.match(actor):
        raise NoteError(
            f"{what} must be a user handle such as jberzins (letters, digits, . _ @ -; "
            f"no spaces), not {actor[:40]!r}"
        )
    return actor


def clean_reason(reason: str) -> str:
    """Return the reason on one line; raise NoteError if it is empty, too long or has a phone."""
    reason = " ".join(reason.split())
    if not reason:
        raise NoteError("a reason is required")
    if len(reason) > MAX_NOTE_CHARS:
        raise NoteError(f"the reason is longer than {MAX_NOTE_CHARS} characters")
    # The record must hold no phone number: refuse rather than quietly store one.
    if any(True for _ in phonenumbers.PhoneNumberMatcher(reason, "LV")):
        raise NoteError("the reason must not contain a phone number; refer to the case instead")
    return reason


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def keep(session: Session, reason: str, *, now: datetime) -> AuditNote:
    """Keep a (cleaned) reason beside the log; the caller puts `reference(note)` in the entry."""
    text = clean_reason(reason)
    note = AuditNote(sha256=digest(text), text=text, created_at=now)
    session.add(note)
    session.flush()
    return note


def reference(note: AuditNote, name: str = "reason") -> dict[str, object]:
    """What an entry's details hold of a note: its id and hash, never its text."""
    return {f"{name}_note": note.id, f"{name}_sha256": note.sha256}


def redact(session: Session, note_id: int, *, by: str, why: str, now: datetime) -> AuditNote:
    """Remove a note's text for good (a lawful request); its hash stays in the chain."""
    note = session.get(AuditNote, note_id)
    if note is None:
        raise NoteError(f"no note {note_id}")
    if note.redacted_at is not None:
        raise NoteError(f"note {note_id} was already redacted")
    note.text = None
    note.redacted_at = now
    note.redacted_by = handle(by)
    note.redaction_reason = clean_reason(why)
    session.flush()
    return note


def text_of(session: Session, note_id: object) -> str | None:
    """The text of a note an entry refers to, or None (redacted, or no such note)."""
    if not isinstance(note_id, int):
        return None
    return session.scalar(select(AuditNote.text).where(AuditNote.id == note_id))


@dataclass(frozen=True)
class NoteProblem:
    note_id: int
    redacted: bool
    problem: str


def check(session: Session) -> Iterator[NoteProblem]:
    """Yield every note that no longer matches its hash, and every redaction, as such."""
    last = 0
    while True:
        page = list(
            session.scalars(
                select(AuditNote).where(AuditNote.id > last).order_by(AuditNote.id).limit(1_000)
            )
        )
        for note in page:
            if note.text is None:
                if note.redacted_at is not None:
                    yield NoteProblem(
                        note.id,
                        True,
                        f"redacted on {note.redacted_at:%Y-%m-%d} by {note.redacted_by}",
                    )
                else:
                    yield NoteProblem(note.id, False, "text removed without a redaction record")
            elif digest(note.text) != note.sha256:
                yield NoteProblem(note.id, False, "text does not match its hash (edited)")
        if len(page) < 1_000:
            return
        last = page[-1].id
        for note in page:
            session.expunge(note)
