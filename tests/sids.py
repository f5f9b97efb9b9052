"""Twilio-shaped SIDs for tests: two letters and 32 hexadecimal digits, as Twilio documents."""

from __future__ import annotations

import uuid


def new_sid(prefix: str = "CA") -> str:
    return prefix + uuid.uuid4().hex
