"""`/twilio/voice/status`: call progress events from Twilio (issue 3)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("status", __name__)
