"""The post-call survey: one question after an answered conversation, answered 1-5.

Asked only on lines with the survey switch on, after a conversation that was answered and
that the staff side ended (the caller is still on the line when the <Dial action> request
comes). The answer is stored on the call, never with the recording; anything but 1-5, or no
answer, stores nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from callcenter.calls.intake import find_call

SCALE = range(1, 6)


def parse_answer(digits: str | None) -> int | None:
    """Return the rating a key press gives, or None (another key, nothing pressed)."""
    value = (digits or "").strip().rstrip("#")
    if len(value) == 1 and value.isdigit() and int(value) in SCALE:
        return int(value)
    return None


def record_answer(session: Session, call_sid: str, rating: int) -> bool:
    """Store a rating on an answered call; False (nothing stored) for any other call."""
    call = find_call(session, call_sid)
    if call is None or call.outcome != "answered" or call.line_id is None:
        return False
    call.survey = rating
    return True
