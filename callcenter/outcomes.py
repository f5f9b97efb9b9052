"""How calls end: Twilio's status and dial callbacks, stored once, folded into an outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from callcenter.models import Call


def record_dial(session: Session, call: Call, form: dict[str, Any], *, now: datetime) -> None:
    """Record the end of one <Dial> (issue 3 fills in outcomes)."""
    call.status = form.get("CallStatus") or call.status
