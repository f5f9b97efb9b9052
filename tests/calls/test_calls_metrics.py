"""Calls on /metrics: a signed call and its status callbacks move the counts by outcome, an
after-hours call is counted as such, and the windows follow the calls' start times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from flask import Flask
from prometheus_client.metrics_core import Metric

from callcenter.settings import Settings, load
from tests.calls.conftest import ANDRIS, OFFICE, RIGA, Clock, Twilio
from tests.scrape import METRICS_TOKEN, scrape, value
from tests.sids import new_sid as sid

pytestmark = pytest.mark.usefixtures("staffed")

Phone = Callable[..., Twilio]
COUNT = "callcenter_webhook_duration_seconds_count"


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load({**env, "METRICS_TOKEN": METRICS_TOKEN})


def calls(found: dict[str, Metric], window: str = "1h") -> dict[str, float]:
    """The non-zero outcomes of the window."""
    return {
        s.labels["outcome"]: s.value
        for s in found["callcenter_calls"].samples
        if s.labels["window"] == window and s.value
    }


def test_a_call_and_its_callbacks_move_the_counts(app: Flask, phone: Phone, clock: Clock) -> None:
    client = app.test_client()
    assert calls(scrape(client)) == {}
    call = phone()
    call.start()
    found = scrape(client)
    assert calls(found) == {"in-progress": 1}
    assert value(found, COUNT, route="/twilio/voice", status_class="2xx") == 1

    leg = sid()
    call.status(call.leg_form(leg, ANDRIS, "ringing"))
    clock.tick(12)
    call.status(call.leg_form(leg, ANDRIS, "in-progress"))
    assert calls(scrape(client)) == {"answered": 1}
    clock.tick(95)
    call.status(call.leg_form(leg, ANDRIS, "completed", CallDuration="95"))
    call.dial(call.dial_form("completed", leg, 95))
    call.status(call.parent_form("completed", CallDuration="107"))
    found = scrape(client)
    assert calls(found) == calls(found, "24h") == {"answered": 1}
    assert value(found, COUNT, route="/twilio/voice/status", status_class="2xx") == 4
    assert value(found, COUNT, route="/twilio/voice/dial-complete", status_class="2xx") == 1

    # A caller left unanswered: the next outcome counted beside the first.
    other = phone()
    other.start()
    leg = sid()
    clock.tick(20)
    other.status(other.leg_form(leg, ANDRIS, "no-answer"))
    other.dial(other.dial_form("no-answer", leg))
    other.status(other.parent_form("completed"))
    assert calls(scrape(client)) == {"answered": 1, "no-answer": 1}


def test_after_hours_calls_and_the_windows(app: Flask, phone: Phone, clock: Clock) -> None:
    client = app.test_client()
    clock.set(datetime(2026, 3, 2, 19, 30, tzinfo=RIGA))
    call = phone(line=OFFICE)
    call.start()
    call.status(call.parent_form("completed"))
    assert calls(scrape(client)) == {"after-hours": 1}
    # Two hours on, the call has left the last hour but not the last day.
    clock.tick(2 * 3600)
    found = scrape(client)
    assert calls(found) == {}
    assert calls(found, "24h") == {"after-hours": 1}
    clock.tick(23 * 3600)
    assert calls(scrape(client), "24h") == {}
