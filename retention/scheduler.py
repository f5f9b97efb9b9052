"""The scheduler process: the one place that runs timed jobs (Procfile `scheduler`).

The jobs are plain functions taking the runtime and `now`; this module only wires triggers.
Rules learned the hard way:
- one scheduler only: a database lease named `scheduler`, renewed by a job, so a second one
  started by mistake idles (and says so) instead of running the jobs twice; it takes over when
  the first stops renewing;
- APScheduler 3 with `coalesce=True`, `max_instances=1` and a generous misfire grace: a trigger
  missed while the process was down runs once when it is back, and the jobs catch up by
  querying the database rather than trusting that every trigger fired;
- the sweep runs once at start too, so a process that was down at 02:30 still deletes on time;
- never started inside the web process (only `callcenter scheduler` / `serve` call this);
- SIGTERM/SIGINT stop it cleanly: no new job starts, a running sweep stops between batches.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from callcenter import leases
from callcenter.adapters.storage import StorageUnavailable
from callcenter.db import transaction
from callcenter.recordings import verification as verify
from callcenter.recordings.ingest import ingest_pending
from callcenter.recordings.reconcile import reconcile
from callcenter.runtime import Runtime
from callcenter.settings import SettingsError
from retention.sweep import sweep

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"
# The lease is renewed every LEASE_RENEW; a stopped scheduler is replaced after LEASE_TTL.
LEASE_RENEW = timedelta(seconds=30)
LEASE_TTL = timedelta(seconds=120)
# The sweep runs at night, local time, when the line is closed and storage is quiet.
SWEEP_HOUR, SWEEP_MINUTE = 2, 30
# The log and a sample of storage are verified once a day, after reconciliation.
VERIFY_HOUR, VERIFY_MINUTE = 4, 0
# Reconciliation lists Twilio's recordings once a day, after the sweep.
RECONCILE_HOUR, RECONCILE_MINUTE = 3, 15
# Ingestion moves pending recordings to storage every minute.
INGEST_INTERVAL = timedelta(minutes=1)
# A trigger missed by up to an hour (a slow deploy, a paused dyno) still runs once.
MISFIRE_GRACE_SECONDS = 3_600


def _now() -> datetime:
    return datetime.now(UTC)


def verify_job(runtime: Runtime, now: datetime) -> None:
    """Verify the log and a sample of storage, and keep the result (compliance reads it)."""
    try:
        with transaction(runtime.sessions) as session:
            result = verify.run(
                session, runtime.storage, now=now, by="scheduler", sample=verify.DAILY_SAMPLE
            )
    except StorageUnavailable as exc:
        log.error("daily verification: %s", exc)
        return
    if result.ok:
        log.info("daily verification: ok, %d entries, head %s", result.entries, result.head)
    else:
        log.error("daily verification: %d problem(s): %s", len(result.problems), result.problems[0])


def sweep_job(runtime: Runtime, now: datetime, stop: threading.Event | None = None) -> None:
    """Run the retention sweep for everything due at `now`."""
    report = sweep(runtime, now=now, stop=stop)
    if report.refused:
        log.warning("retention sweep skipped: another sweep is running")
    elif report.failed:
        log.error("retention sweep: %d deletions failed; retried at the next run", report.failed)


def ingest_job(runtime: Runtime, now: datetime) -> None:
    """Move pending recordings from Twilio to storage once."""
    ingest_pending(runtime.sessions, runtime.storage, runtime.twilio, now=now)


# The daily reconciliation looks this far back: it runs every day, so a recording whose
# callback was lost is found on the first run after it; a full pass is
# `callcenter recordings reconcile` without --since.
RECONCILE_WINDOW = timedelta(days=7)


def reconcile_job(runtime: Runtime, now: datetime) -> None:
    """Compare Twilio's recent recordings with ours and ingest what callbacks missed."""
    reconcile(runtime, now=now, since=(now - RECONCILE_WINDOW).date())


class SchedulerLease:
    """This process's hold on the `scheduler` lease; jobs run only while it is held."""

    def __init__(self, runtime: Runtime, holder: str | None = None) -> None:
        self.runtime = runtime
        self.holder = holder or leases.holder_id("scheduler")
        # None until the first renewal: logging says what changed, not the same thing each time.
        self.held: bool | None = None

    def renew(self, now: datetime) -> bool:
        """Take or renew the lease; log only when this process starts or stops being the one."""
        try:
            with transaction(self.runtime.sessions) as session:
                ours = leases.acquire(session, SCHEDULER_LEASE, self.holder, now=now, ttl=LEASE_TTL)
        except Exception:
            log.exception("scheduler lease: could not reach the database")
            ours = False
        if ours and self.held is not True:
            log.info("scheduler lease taken by %s: running the jobs", self.holder)
        elif not ours and self.held is True:
            log.warning("scheduler lease lost: idling until it is free again")
        elif not ours and self.held is None:
            log.warning(
                "another scheduler holds the lease: this one idles and takes over if it stops"
            )
        self.held = ours
        return ours

    def release(self) -> None:
        """Give the lease up at a clean stop, so a replacement need not wait for it to expire."""
        with transaction(self.runtime.sessions) as session:
            leases.release(session, SCHEDULER_LEASE, self.holder)
        self.held = False


def guarded(
    lease: SchedulerLease, name: str, job: Callable[[Runtime, datetime], None]
) -> Callable[[], None]:
    """Wrap a job so that it runs only while this process holds the scheduler lease."""

    def run() -> None:
        now = _now()
        if not lease.renew(now):
            log.debug("job %s skipped: another scheduler holds the lease", name)
            return
        job(lease.runtime, now)

    run.__name__ = name
    return run


def _on_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR and isinstance(event.exception, SettingsError):
        # A setting problem (Twilio refusing the token, say): one line naming it, no traceback.
        log.error("job %s failed: %s", event.job_id, event.exception)
    elif event.code == EVENT_JOB_ERROR:
        log.error("job %s failed: %r", event.job_id, event.exception, exc_info=event.exception)
    elif event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run at %s", event.job_id, event.scheduled_run_time)


def build_scheduler(
    runtime: Runtime, lease: SchedulerLease, stop: threading.Event
) -> BlockingScheduler:
    """Wire the jobs to their triggers in the line's time zone."""
    zone = runtime.settings.timezone
    scheduler = BlockingScheduler(
        timezone=zone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )
    scheduler.add_listener(_on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def sweep_now(rt: Runtime, now: datetime) -> None:
        sweep_job(rt, now, stop)

    started = datetime.now(zone)
    scheduler.add_job(
        lambda: lease.renew(_now()),
        IntervalTrigger(seconds=LEASE_RENEW.total_seconds(), timezone=zone),
        id="scheduler-lease",
        name="scheduler-lease",
        next_run_time=started,
    )
    scheduler.add_job(
        guarded(lease, "retention-sweep", sweep_now),
        CronTrigger(hour=SWEEP_HOUR, minute=SWEEP_MINUTE, timezone=zone),
        id="retention-sweep",
        name="retention-sweep",
        # Once at start as well: a process down at 02:30 must not skip a day.
        next_run_time=started,
    )
    scheduler.add_job(
        guarded(lease, "ingest-recordings", ingest_job),
        IntervalTrigger(seconds=INGEST_INTERVAL.total_seconds(), timezone=zone),
        id="ingest-recordings",
        name="ingest-recordings",
        next_run_time=started,
    )
    scheduler.add_job(
        guarded(lease, "reconcile-recordings", reconcile_job),
        CronTrigger(hour=RECONCILE_HOUR, minute=RECONCILE_MINUTE, timezone=zone),
        id="reconcile-recordings",
        name="reconcile-recordings",
    )
    scheduler.add_job(
        guarded(lease, "verify-retention", verify_job),
        CronTrigger(hour=VERIFY_HOUR, minute=VERIFY_MINUTE, timezone=zone),
        id="verify-retention",
    )
    return scheduler


def run_scheduler(runtime: Runtime, *, install_signal_handlers: bool = True) -> None:
    """Run the timed jobs until SIGTERM or SIGINT; idle while another scheduler holds the lease."""
    stop = threading.Event()
    lease = SchedulerLease(runtime)
    scheduler = build_scheduler(runtime, lease, stop)

    def shut_down(signum: int, _frame: FrameType | None) -> None:
        log.info("scheduler: signal %d, stopping", signum)
        stop.set()
        # Waiting is safe here: the jobs run on pool threads, a running sweep stops at its next
        # batch boundary (it watches `stop`), and start() returns once this handler does.
        scheduler.shutdown(wait=True)

    previous: dict[signal.Signals, Any] = {}
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, shut_down)
    log.info("scheduler starting in %s", runtime.settings.timezone.key)
    try:
        scheduler.start()
    finally:
        stop.set()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        lease.release()
        log.info("scheduler stopped")
