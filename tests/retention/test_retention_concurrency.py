"""Two sweeps at once on PostgreSQL: each recording is deleted and logged exactly once.

SQLite has one writer and `FOR UPDATE` does nothing there, so concurrency is proven on
PostgreSQL (TEST_DATABASE_URL), with real threads and connections.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.recordings.verification import verify
from callcenter.runtime import Runtime
from retention import sweep as sweep_module
from retention.sweep import SweepReport, sweep
from tests.fakes.twilio_api import FakeTwilio
from tests.retention.conftest import AddRecording, delete_requests, entries, provider_deleted

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL (PostgreSQL)"
    ),
]

STARTED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
DUE = datetime(2026, 4, 15, 8, 30, tzinfo=UTC)
COUNT = 40


def _run_together(rt: Runtime, runs: int = 2) -> list[SweepReport]:
    barrier = threading.Barrier(runs)
    reports: list[SweepReport] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            reports.append(sweep(rt, now=DUE + timedelta(days=1), batch_size=4))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return reports


@pytest.fixture
def slow_storage(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each storage call take a moment, so the two runs really overlap."""
    real = type(rt.storage).delete_all

    def slow(self: object, keys: list[str]) -> object:
        time.sleep(0.02)
        return real(self, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(type(rt.storage), "delete_all", slow)


def _assert_each_deleted_once(rt: Runtime, twilio: FakeTwilio, made: list[str]) -> None:
    logged = Counter(e.recording_sid for e in entries(rt.sessions, "deleted"))
    assert logged == Counter(made)
    assert provider_deleted(twilio) == set(made)
    # One DELETE each: no run deleted what another already had.
    assert [delete_requests(twilio, sid) for sid in made] == [1] * len(made)
    with rt.sessions() as session:
        assert list(verify(session, rt.storage, now=DUE + timedelta(days=1))) == []


def test_two_sweeps_at_once_delete_and_log_each_recording_once(
    rt: Runtime, add_recording: AddRecording, twilio: FakeTwilio, slow_storage: None
) -> None:
    made = [
        add_recording(STARTED + timedelta(minutes=m), twilio_copy=True).recording_sid
        for m in range(COUNT)
    ]
    reports = _run_together(rt)
    assert sum(r.deleted for r in reports) == COUNT
    # The lease (and the advisory lock) let one run in; the other did nothing at all.
    assert sorted(r.refused for r in reports) == [False, True]
    _assert_each_deleted_once(rt, twilio, made)
    assert len(entries(rt.sessions, "sweep_started")) == 1


def test_without_the_lease_row_claims_still_keep_each_deletion_single(
    rt: Runtime,
    add_recording: AddRecording,
    twilio: FakeTwilio,
    slow_storage: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Defence in depth: even if both runs got past the lease (a bug, a clock jump), the claims
    # and the conditional marking UPDATE let only one of them delete and log each recording.
    @contextmanager
    def always(*args: object) -> Iterator[bool]:
        yield True

    monkeypatch.setattr(sweep_module, "_exclusive", always)
    monkeypatch.setattr(sweep_module.leases, "acquire", lambda *a, **k: True)
    made = [
        add_recording(STARTED + timedelta(minutes=m), twilio_copy=True).recording_sid
        for m in range(COUNT)
    ]
    reports = _run_together(rt, runs=3)
    assert not any(r.refused for r in reports)
    assert sum(r.deleted for r in reports) == COUNT
    assert sum(r.failed for r in reports) == 0
    _assert_each_deleted_once(rt, twilio, made)
