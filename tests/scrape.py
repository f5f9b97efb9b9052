"""Reading /metrics as Prometheus does: the text format parsed by prometheus-client's parser."""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# Long enough for the setting's check (at least 24 characters).
METRICS_TOKEN = "metrics-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}

# Every family /metrics holds (the histogram's name without its _bucket/_count/_sum).
FAMILIES = {
    "callcenter_webhook_duration_seconds",
    "callcenter_calls",
    "callcenter_calls_answered_by_fallback",
    "callcenter_ingestion_backlog",
    "callcenter_ingestion_oldest_pending_seconds",
    "callcenter_ingestion_retrying",
    "callcenter_retention_log_entries",
    "callcenter_sweep_last_finished_timestamp_seconds",
    "callcenter_sweep_last_ok",
    "callcenter_sweep_last_recordings",
    "callcenter_verification_last_run_timestamp_seconds",
    "callcenter_verification_last_ok",
    "callcenter_verification_last_problems",
    "callcenter_scheduler_lease_held",
    "callcenter_scheduler_lease_expires_in_seconds",
    "callcenter_database_up",
}


def families(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(found: dict[str, Metric], sample: str, **labels: str) -> float | None:
    """The value of one sample (by its full name and labels), or None if there is none."""
    for family in found.values():
        for item in family.samples:
            if item.name == sample and item.labels == labels:
                return float(item.value)
    return None


def scrape(client: Any) -> dict[str, Metric]:
    """GET /metrics with the token through a Flask test client; parse it."""
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return families(response.get_data(as_text=True))
