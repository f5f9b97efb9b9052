"""/metrics: the token rules, every family in a text Prometheus parses, webhook latency by
route and status class, and a scrape that survives a database out of reach."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from sqlalchemy import Engine

from callcenter import gunicorn_config, metrics
from callcenter.app import create_app
from callcenter.runtime import Runtime
from callcenter.settings import Settings, SettingsError, load
from tests.conftest import TwilioPost
from tests.scrape import BEARER, FAMILIES, METRICS_TOKEN, families, scrape, value
from tests.sids import new_sid


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load({**env, "METRICS_TOKEN": METRICS_TOKEN})


def test_without_the_setting_there_is_no_metrics_address(env: dict[str, str], engine: Engine):
    app = create_app(runtime=Runtime(load(env), _engine=engine))
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=BEARER).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}", "Bearer wrong"],
)
def test_a_missing_or_wrong_token_is_refused(app: Flask, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"callcenter_" not in response.data


def test_the_right_token_gets_every_family(app: Flask) -> None:
    client = app.test_client()
    found = scrape(client)
    assert set(found) >= FAMILIES
    # Scheme names are case-insensitive (RFC 7235).
    lower = client.get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"})
    assert lower.status_code == 200
    assert value(found, "callcenter_database_up") == 1
    assert value(found, "callcenter_scheduler_lease_held") == 0
    assert value(found, "callcenter_ingestion_backlog") == 0
    assert value(found, "callcenter_calls", window="24h", outcome="answered") == 0
    assert value(found, "callcenter_retention_log_entries_total", event="deleted") == 0


@pytest.mark.parametrize("token", ["short", "x" * 23, "a" * 20 + " " + "b" * 20, "ā" * 30])
def test_a_weak_or_unusable_token_is_refused_at_start(env: dict[str, str], token: str) -> None:
    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        load({**env, "METRICS_TOKEN": token})


def test_webhook_latency_by_route_template_and_status_class(
    app: Flask, twilio_post: TwilioPost
) -> None:
    client = app.test_client()
    signed = {"CallSid": new_sid("CA"), "AccountSid": "AC" + "0" * 31 + "1"}
    assert twilio_post("/twilio/voice/fallback", signed).status_code == 200
    assert twilio_post("/twilio/voice/fallback", signed).status_code == 200
    assert client.post("/twilio/voice/fallback", data=signed).status_code == 403
    assert client.post("/twilio/no-such-route").status_code == 404
    client.get("/healthz")
    found = scrape(client)
    count = "callcenter_webhook_duration_seconds_count"
    assert value(found, count, route="/twilio/voice/fallback", status_class="2xx") == 2
    assert value(found, count, route="/twilio/voice/fallback", status_class="4xx") == 1
    # A number pointed at a wrong address shows as one bounded label, not its path.
    assert value(found, count, route="unmatched", status_class="4xx") == 1
    routes = {s.labels["route"] for s in found["callcenter_webhook_duration_seconds"].samples}
    assert routes == {"/twilio/voice/fallback", "unmatched"}
    total = value(
        found, "callcenter_webhook_duration_seconds_sum", route="unmatched", status_class="4xx"
    )
    assert total is not None and 0 < total < 5


def test_no_label_holds_a_number_or_a_sid(app: Flask, twilio_post: TwilioPost) -> None:
    caller = "+37129111111"
    sid = new_sid("CA")
    twilio_post(
        "/twilio/voice",
        {"CallSid": sid, "From": caller, "To": "+37167000009", "AccountSid": "AC" + "0" * 31 + "1"},
    )
    text = app.test_client().get("/metrics", headers=BEARER).get_data(as_text=True)
    assert caller not in text and sid not in text
    for family in families(text).values():
        for sample in family.samples:
            for name, label in sample.labels.items():
                if name == "le":
                    continue  # the histogram's bucket bounds: "+Inf" is one
                assert not label.startswith(("+", "CA", "RE")), sample


def test_a_database_out_of_reach_is_reported_not_hung(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "callcenter.db"
    runtime = Runtime(
        load({**env, "DATABASE_URL": f"sqlite:///{missing}", "METRICS_TOKEN": METRICS_TOKEN})
    )
    found = scrape(create_app(runtime=runtime).test_client())
    assert value(found, "callcenter_database_up") == 0
    assert "callcenter_webhook_duration_seconds" in found
    runtime.close()


def test_a_multiprocess_directory_that_cannot_take_files_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(blocker / "prometheus"))
    with pytest.raises(SettingsError, match="PROMETHEUS_MULTIPROC_DIR"):
        metrics.check_multiprocess_dir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "new" / "prometheus"))
    metrics.check_multiprocess_dir()
    assert (tmp_path / "new" / "prometheus").is_dir()


def test_gunicorn_resets_the_directory_at_start_and_marks_dead_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("histogram_11.db", "counter_11.db", "gauge_livesum_12.db", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    gunicorn_config.on_starting(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    for name in ("histogram_12.db", "gauge_livesum_12.db", "gauge_all_12.db"):
        (tmp_path / name).write_bytes(b"")
    gunicorn_config.child_exit(None, SimpleNamespace(pid=12))
    # A dead worker's live gauges go; its totals stay in the sums.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gauge_all_12.db",
        "histogram_12.db",
        "notes.txt",
    ]
