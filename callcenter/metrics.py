"""`/metrics`: what an operator graphs and alerts on, in Prometheus' text format.

Two sources, chosen by which process does the work:

- The web process's own: how long each webhook took (a Histogram, observed in an
  `after_request` hook: a few microseconds, no database work). Under gunicorn every worker is
  a process of its own, so with PROMETHEUS_MULTIPROC_DIR set each one writes its samples into
  files there and `/metrics` sums every worker's (prometheus-client's multiprocess mode); the
  directory is emptied when the server starts and a dead worker is marked as such
  (`callcenter/gunicorn_config.py`). Without the setting, one process's registry.
- The database's, read when Prometheus scrapes (`StateCollector`): calls by outcome, the
  ingestion backlog, the retention log's deletions and failures, the last sweep and
  verification, the scheduler lease. The scheduler process does that work, not the web; read
  from the database, the web's `/metrics` tells the truth whichever process did it, survives
  restarts, and needs no multiprocess care. Every query is cheap: an index each (the calls'
  start time, the pending recordings, the log's `seq`), and the log is counted incrementally.

Rules: no label is a phone number, a SID or free text (routes are the rule templates, outcomes
and events their enums); `/metrics` answers 404 without METRICS_TOKEN, 401 to a request
without `Authorization: Bearer METRICS_TOKEN`. Only the composition root imports this module.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from callcenter import leases, logs
from callcenter.audit.events import RetentionEvent
from callcenter.audit.models import RetentionEntry
from callcenter.calls.models import Call
from callcenter.calls.outage import FALLBACK_NOTE
from callcenter.calls.states import Outcome
from callcenter.db import deadline
from callcenter.health import SCHEDULER_LEASE
from callcenter.recordings import verification as verify
from callcenter.recordings.models import Recording
from callcenter.recordings.states import RecordingStatus
from callcenter.runtime import Runtime
from callcenter.settings import SettingsError
from console import access

log = logging.getLogger(__name__)

PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A scrape waits on the database at most this long (Prometheus' default timeout is 10 s).
SCRAPE_SECONDS = 3.0
# The windows calls are counted over, by their start time.
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}
# The routes whose latency is measured: Twilio's webhooks (it waits 15 s at most).
WEBHOOK_PREFIX = "/twilio/"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
# The route label of a /twilio/ request that matched no route (a number pointed at a wrong URL).
UNMATCHED = "unmatched"
_STARTED = "callcenter.metrics.started"
# prometheus-client's own files in the multiprocess directory (nothing else is removed).
_SAMPLE_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def multiprocess_dir() -> str | None:
    return (os.environ.get(MULTIPROC_ENV) or "").strip() or None


def check_multiprocess_dir() -> None:
    """Make sure the multiprocess directory, when set, exists and takes files; else stop.

    A directory that cannot be written would fail the first webhook's observation: this says
    so at start, as a setting problem, instead.
    """
    directory = multiprocess_dir()
    if directory is None:
        return
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        probe = Path(directory) / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(
            MULTIPROC_ENV, f"cannot write to {directory!r}: {exc.strerror}"
        ) from None


def reset_multiprocess_dir() -> None:
    """Remove the samples of an earlier server (gunicorn's `on_starting`, before any worker)."""
    directory = multiprocess_dir()
    if directory is None:
        return
    for pattern in _SAMPLE_FILES:
        for path in Path(directory).glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def worker_exited(pid: int) -> None:
    """gunicorn's `child_exit`: a dead worker's live gauges stop counting (its totals stay)."""
    if multiprocess_dir() is not None:
        prometheus_multiprocess.mark_process_dead(pid)


def _status_class(status: int) -> str:
    return f"{status // 100}xx"


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


class _LogTally:
    """Entries of the retention log by event, counted incrementally by `seq`.

    The log is append-only and its appends are serialised (an entry is visible only after every
    earlier one), so entries up to the newest `seq` seen are counted once and never change: a
    scrape reads only what was appended since the last one. A log whose newest `seq` went back
    (a restored backup) is counted again from the start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._counts: dict[str, int] = {}

    def counts(self, session: Session) -> dict[str, int]:
        with self._lock:
            head = session.scalar(select(func.max(RetentionEntry.seq))) or 0
            if head < self._seq:
                self._seq, self._counts = 0, {}
            if head > self._seq:
                rows = session.execute(
                    select(RetentionEntry.event, func.count())
                    .where(RetentionEntry.seq > self._seq, RetentionEntry.seq <= head)
                    .group_by(RetentionEntry.event)
                )
                for event, count in rows:
                    self._counts[event] = self._counts.get(event, 0) + int(count)
                self._seq = head
            return dict(self._counts)


class StateCollector(Collector):
    """The service's state as the database holds it, read at each scrape.

    A database that cannot be read within SCRAPE_SECONDS gives `callcenter_database_up 0`
    and none of these families, rather than a scrape that hangs or fails as a whole.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._tally = _LogTally()

    def describe(self) -> Iterable[Metric]:
        # Registering must not query the database (the app is built in gunicorn's master).
        return []

    def collect(self) -> Iterable[Metric]:
        now = self._runtime.now()
        try:
            with deadline(SCRAPE_SECONDS), self._runtime.sessions() as session:
                families = list(self._families(session, now))
            up = 1
        except Exception as exc:
            log.warning("metrics: the database could not be read: %s", logs.cause(exc))
            families, up = [], 0
        yield from families
        yield GaugeMetricFamily(
            "callcenter_database_up",
            "1 if this scrape read the service's state from the database, else 0",
            value=up,
        )

    def _families(self, session: Session, now: datetime) -> Iterator[Metric]:
        yield from self._calls(session, now)
        yield from self._ingestion(session, now)
        yield from self._retention_log(session)
        yield from self._sweep(session)
        yield from self._verification(session)
        yield from self._lease(session, now)

    def _calls(self, session: Session, now: datetime) -> Iterator[Metric]:
        # One pass over the last day's calls (the start-time index), both windows at once.
        hour = Call.started_at >= now - WINDOWS["1h"]
        fallback = Call.routing_note == FALLBACK_NOTE
        rows = session.execute(
            select(
                Call.outcome,
                func.count(),
                func.sum(case((hour, 1), else_=0)),
                func.sum(case((fallback, 1), else_=0)),
                func.sum(case((hour & fallback, 1), else_=0)),
            )
            .where(Call.started_at >= now - WINDOWS["24h"])
            .group_by(Call.outcome)
        ).all()
        by_outcome = {str(o): {"24h": 0, "1h": 0} for o in Outcome}
        fallbacks = {"24h": 0, "1h": 0}
        for outcome, day, hour_count, fallback_day, fallback_hour in rows:
            if outcome in by_outcome:  # only the enum's values: the label stays bounded
                by_outcome[outcome]["24h"] += int(day)
                by_outcome[outcome]["1h"] += int(hour_count or 0)
            fallbacks["24h"] += int(fallback_day or 0)
            fallbacks["1h"] += int(fallback_hour or 0)
        calls = GaugeMetricFamily(
            "callcenter_calls",
            "Calls started within the window (1h, 24h), by their outcome so far",
            labels=["window", "outcome"],
        )
        for outcome, counts in by_outcome.items():
            for window in WINDOWS:
                calls.add_metric([window, outcome], counts[window])
        yield calls
        answered_by_fallback = GaugeMetricFamily(
            "callcenter_calls_answered_by_fallback",
            "Calls started within the window that were answered by the fallback (the database "
            "was out of reach) and logged from their callbacks afterwards",
            labels=["window"],
        )
        for window in WINDOWS:
            answered_by_fallback.add_metric([window], fallbacks[window])
        yield answered_by_fallback

    def _ingestion(self, session: Session, now: datetime) -> Iterator[Metric]:
        # The pending rows only (their partial index): the backlog, its oldest, its retries.
        backlog, oldest, retrying = session.execute(
            select(
                func.count(),
                func.min(Recording.created_at),
                func.sum(case((Recording.attempts > 0, 1), else_=0)),
            ).where(Recording.status == RecordingStatus.PENDING)
        ).one()
        yield GaugeMetricFamily(
            "callcenter_ingestion_backlog",
            "Recordings waiting to be moved from Twilio into our storage",
            value=int(backlog or 0),
        )
        yield GaugeMetricFamily(
            "callcenter_ingestion_oldest_pending_seconds",
            "Age of the oldest recording waiting to be ingested (0 when none is)",
            value=0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
        )
        yield GaugeMetricFamily(
            "callcenter_ingestion_retrying",
            "Recordings waiting to be ingested that failed at least once and will be retried",
            value=int(retrying or 0),
        )

    def _retention_log(self, session: Session) -> Iterator[Metric]:
        counts = self._tally.counts(session)
        entries = CounterMetricFamily(
            "callcenter_retention_log_entries",
            "Entries of the retention log by event: deleted (sweep deletions), delete_failed "
            "(sweep failures), ingest_failed (ingestion failing repeatedly), missing_object, ...",
            labels=["event"],
        )
        for event in RetentionEvent:
            entries.add_metric([str(event)], counts.get(str(event), 0))
        yield entries

    def _sweep(self, session: Session) -> Iterator[Metric]:
        # The newest `sweep_finished`, found backwards along the `seq` index (one a day).
        last = session.scalars(
            select(RetentionEntry)
            .where(RetentionEntry.event == RetentionEvent.SWEEP_FINISHED)
            .order_by(RetentionEntry.seq.desc())
            .limit(1)
        ).first()
        at = GaugeMetricFamily(
            "callcenter_sweep_last_finished_timestamp_seconds",
            "When the last retention sweep finished (Unix time)",
        )
        ok = GaugeMetricFamily(
            "callcenter_sweep_last_ok",
            "1 if the last retention sweep deleted everything due, 0 if some deletion failed "
            "or it stopped early",
        )
        counted = GaugeMetricFamily(
            "callcenter_sweep_last_recordings",
            "What the last retention sweep did with the recordings due, by result",
            labels=["result"],
        )
        if last is not None:
            details: dict[str, Any] = dict(last.details or {})
            at.add_metric([], _timestamp(last.at))
            ok.add_metric([], 0 if details.get("failed") or details.get("stopped") else 1)
            for result in ("deleted", "failed", "held", "busy"):
                value = details.get(result)
                counted.add_metric([result], value if isinstance(value, int) else 0)
        yield from (at, ok, counted)

    def _verification(self, session: Session) -> Iterator[Metric]:
        last = verify.last_run(session)
        at = GaugeMetricFamily(
            "callcenter_verification_last_run_timestamp_seconds",
            "When `retention verify` last ran (Unix time), from the command line, the console "
            "or the scheduler",
        )
        ok = GaugeMetricFamily(
            "callcenter_verification_last_ok",
            "1 if the last verification found the log and storage consistent, else 0",
        )
        problems = GaugeMetricFamily(
            "callcenter_verification_last_problems",
            "Problems the last verification found (up to 1000 are kept)",
        )
        if last is not None:
            at.add_metric([], _timestamp(last.at))
            ok.add_metric([], 1 if last.ok else 0)
            problems.add_metric([], len(last.problems or []))
        yield from (at, ok, problems)

    def _lease(self, session: Session, now: datetime) -> Iterator[Metric]:
        lease = session.get(leases.Lease, SCHEDULER_LEASE)
        held = GaugeMetricFamily(
            "callcenter_scheduler_lease_held",
            "1 if a scheduler holds its lease (it renews it every 30 s for 120 s), else 0",
        )
        expires = GaugeMetricFamily(
            "callcenter_scheduler_lease_expires_in_seconds",
            "Seconds until the scheduler's lease expires (negative: expired that long ago); "
            "below 90 a renewal was missed",
        )
        if lease is None:
            held.add_metric([], 0)
        else:
            remaining = (lease.expires_at - now).total_seconds()
            held.add_metric([], 1 if remaining > 0 else 0)
            expires.add_metric([], remaining)
        yield from (held, expires)


def _authorized(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def install(app: Flask, runtime: Runtime) -> Callable[[str, int, float], None]:
    """Serve /metrics on `app` and time its webhooks.

    Returns `observe(route, status, seconds)`, with which `webhooks.front` times the webhooks
    it answers ahead of Flask (Flask's own are timed by the hooks installed here).
    """
    latency = Histogram(
        "callcenter_webhook_duration_seconds",
        "Time to answer a Twilio webhook, by route (its path template) and status class",
        ["route", "status_class"],
        buckets=LATENCY_BUCKETS,
        registry=None,
    )
    registry = CollectorRegistry()
    if multiprocess_dir() is not None:
        # Every worker's samples, summed from the files they write.
        prometheus_multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(latency)
    registry.register(StateCollector(runtime))

    # First of the app's hooks, so the time includes the others (the access rule, the locale).
    def started() -> None:
        if request.path.startswith(WEBHOOK_PREFIX):
            request.environ[_STARTED] = time.perf_counter()

    app.before_request_funcs.setdefault(None, []).insert(0, started)

    def timed(route: str, status: int, seconds: float) -> None:
        try:
            latency.labels(route, _status_class(status)).observe(seconds)
        except Exception as exc:  # a metric never costs a caller their answer
            log.warning("metrics: latency not recorded: %s", logs.cause(exc))

    @app.after_request
    def observe(response: Response) -> Response:
        began = request.environ.get(_STARTED)
        if began is not None:
            rule = request.url_rule
            timed(
                rule.rule if rule is not None else UNMATCHED,
                response.status_code,
                time.perf_counter() - began,
            )
        return response

    @app.get(PATH)
    @access.bearer_token
    def metrics() -> Response:
        token = runtime.settings.metrics_token
        if token is None:
            abort(404)  # not configured: as if there were no such address
        if not _authorized(token):
            return Response(
                "401 Unauthorized: send Authorization: Bearer METRICS_TOKEN\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        # The text format (0.0.4) unless the scraper asks for OpenMetrics or a newer text.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(registry), status=200, content_type=content_type)

    return timed
