"""`/twilio/recording-status`: a recording is ready (or absent) at Twilio."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("recordings", __name__)
