"""/metrics under the Procfile's web: two gunicorn workers in multiprocess mode. Requests
spread over the workers, every scrape (whichever worker answers it) sums them all, a killed
worker's samples are kept, and an earlier server's samples are removed at start."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker

from callcenter.directory import service as directory
from tests.processes import call_sid, procfile_web, signed_post, voice_form
from tests.scrape import BEARER, METRICS_TOKEN, families, value

pytestmark = pytest.mark.slow

LINE = "+37167000002"
COUNT = "callcenter_webhook_duration_seconds_count"


def worker_pids(directory: Path) -> set[int]:
    """The workers that observed a request: each writes its own file."""
    return {int(path.stem.split("_")[-1]) for path in directory.glob("histogram_*.db")}


def answered_calls(base: str) -> float:
    response = requests.get(base + "/metrics", headers=BEARER, timeout=10)
    assert response.status_code == 200, response.text
    return value(families(response.text), COUNT, route="/twilio/voice", status_class="2xx") or 0


def call(base: str) -> None:
    # A new connection each time (no session): the kernel hands them to either worker.
    response = signed_post(base, "/twilio/voice", voice_form(call_sid(), LINE), timeout=10)
    assert response.status_code == 200, response.text


def test_metrics_sum_every_worker(
    env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions.begin() as session:
        directory.add_staff(session, "jberzins", name="Jānis Bērziņš", phone="+37120000001")
        directory.add_line(session, LINE, target="staff:jberzins", hours="always")
    samples = tmp_path / "prometheus"
    samples.mkdir()
    # An earlier server's samples: not this one's to count.
    (samples / "histogram_999999.db").write_bytes(b"\0" * 64)
    process_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with procfile_web(
        process_env,
        tmp_path / "web.log",
        PROMETHEUS_MULTIPROC_DIR=str(samples),
        METRICS_TOKEN=METRICS_TOKEN,
    ) as base:
        assert not (samples / "histogram_999999.db").exists()
        assert requests.get(base + "/metrics", timeout=10).status_code == 401
        sent = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(worker_pids(samples)) < 2 and sent < 400:
                list(pool.map(lambda _: call(base), range(16)))
                sent += 16
        pids = worker_pids(samples)
        assert len(pids) == 2, (tmp_path / "web.log").read_text()
        # Each scrape is answered by one worker or the other; every one sums both.
        assert {answered_calls(base) for _ in range(8)} == {sent}

        # A worker killed: gunicorn starts another, and the dead one's samples still count.
        os.kill(min(pids), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if answered_calls(base) == sent and len(worker_pids(samples)) >= 2:
                    call(base)
                    sent += 1
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
            time.sleep(0.2)
        assert {answered_calls(base) for _ in range(4)} == {sent}
