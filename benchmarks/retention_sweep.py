"""Benchmark the retention sweep: its cost follows what is due, not what is kept.

Fills a SQLite database with 1,000,000 recordings (and one `stored` log entry each, as a real
log has), among them REPEATS + 1 sets of 10,000 whose due times are spaced so that at each
sweep's `now` exactly one set is due, with their tiny objects on local disk. Runs the real
sweep (`retention.sweep.sweep`) REPEATS times untimed by anything but the clock (the best time
counts), then once more under tracemalloc for the peak of Python memory. The same with
100,000 recordings; then compares the two.

    python benchmarks/retention_sweep.py [--big 1000000] [--small 100000] [--due 10000]
                                         [--batch-size 1000] [--repeats 2] [--dir PATH]

Passes (exit 0) when the big database's sweep takes at most 1.3 times the small one's and the
peak memory of every sweep stays within MEMORY_LIMIT_FIXED + MEMORY_LIMIT_PER_BATCH_ROW x
batch size (it grows with the batch, not with what is due or kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from callcenter import migrate  # noqa: E402
from callcenter.db import make_engine  # noqa: E402
from callcenter.recordings.models import Recording  # noqa: E402
from callcenter.runtime import Runtime  # noqa: E402
from callcenter.settings import load  # noqa: E402
from retention.sweep import sweep  # noqa: E402

# Rows per executemany: big enough that per-statement overhead vanishes.
FILL_CHUNK = 50_000
# The sweep holds one batch at a time: its rows, claims, outcomes, the log entries being
# chained and the statements with a batch of bound ids. Measured at about 4 KiB a row; the
# bound allows twice that, plus a fixed allowance for SQLAlchemy's caches warming up.
MEMORY_LIMIT_PER_BATCH_ROW = 8 * 1024
MEMORY_LIMIT_FIXED = 2 * 1024 * 1024
RATIO_LIMIT = 1.3

NOW = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)
# Due set k is due in the SET_SPACING before sweep_time(k); kept rows are due after the last.
SET_SPACING = timedelta(hours=12)
ACCOUNT_SID = "AC" + "0" * 31 + "1"


@dataclass
class Run:
    total: int
    due: int
    fill_seconds: float
    sweep_times: list[float]
    batches: int
    traced_seconds: float
    peak_bytes: int

    @property
    def sweep_seconds(self) -> float:
        # The best of the repeats: what the code costs, less what the machine's neighbours did.
        return min(self.sweep_times)

    @property
    def per_second(self) -> float:
        return self.due / self.sweep_seconds if self.sweep_seconds else float("inf")


def _sid(prefix: str, n: int) -> str:
    return prefix + f"{n:032x}"


def _key(n: int) -> str:
    return f"recordings/{n % 256:02x}/{_sid('RE', n)}.wav"


def _sqlite_time(at: datetime) -> str:
    """Format a UTC time exactly as UTCDateTime stores it on SQLite (naive UTC, microseconds)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def sweep_time(set_number: int) -> datetime:
    """The `now` at which exactly due set `set_number` (0, 1, ...) is due."""
    return NOW + set_number * SET_SPACING


def _due_at(n: int, *, due: int, sets: int) -> datetime:
    """Rows [0, sets*due) form the due sets, in order; the rest are kept past the last sweep."""
    if n < sets * due:
        number, offset = divmod(n, due)
        return sweep_time(number) - timedelta(seconds=1 + offset)
    # Kept: due at any time in the three months after the last sweep, in no particular order.
    return sweep_time(sets) + timedelta(seconds=1 + (n * 7919) % (90 * 86_400))


_INSERT_RECORDING = (
    "INSERT INTO recordings (recording_sid, call_sid, status, started_at, due_at, storage_key, "
    "size_bytes, sha256, attempts, on_hold, stored_at, provider_deleted_at, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ENTRY = (
    "INSERT INTO retention_log (seq, at, event, recording_sid, actor, details, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SHA = hashlib.sha256(b"RIFF").hexdigest()
_DETAILS = json.dumps({"sha256": _SHA, "size": 4}, sort_keys=True, separators=(",", ":"))


def fill(directory: Path, *, kept: int, due: int, sets: int) -> tuple[Runtime, float]:
    """Create the database and the due objects; return a runtime on them and the fill time.

    The rows go in through the driver's executemany with values preformatted as the models
    store them: per-row ORM/type processing would make the fill, not the sweep, the benchmark.
    """
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    url = f"sqlite:///{directory / 'callcenter.db'}"
    began = time.perf_counter()
    engine = make_engine(url)
    migrate.upgrade(engine)
    total = kept + sets * due
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        # Bulk loading only (the database is thrown away afterwards): no fsync, a big cache
        # for the random-order inserts into the due-time index.
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-262144")
        for start in range(0, total, FILL_CHUNK):
            recordings = []
            entries = []
            for n in range(start, min(total, start + FILL_CHUNK)):
                due_at = _due_at(n, due=due, sets=sets)
                started = _sqlite_time(due_at - timedelta(days=91))
                sid = _sid("RE", n)
                recordings.append(
                    (
                        sid,
                        _sid("CA", n),
                        "stored",
                        started,
                        _sqlite_time(due_at),
                        _key(n),
                        4,
                        _SHA,
                        1,
                        0,
                        started,
                        started,
                        started,
                    )
                )
                # Not a real chain (the sweep reads only the tail), but unique like one.
                entries.append(
                    (
                        n + 1,
                        started,
                        "stored",
                        sid,
                        "ingest",
                        _DETAILS,
                        f"{n:064x}",
                        f"{n + 1:064x}",
                    )
                )
            cursor.executemany(_INSERT_RECORDING, recordings)
            cursor.executemany(_INSERT_ENTRY, entries)
            raw.commit()
        cursor.execute("ANALYZE")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.commit()
    finally:
        raw.close()
    root = directory / "recordings"
    for n in range(sets * due):
        path = root / _key(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
    # Write back everything the fill dirtied now, or the kernel does it during the timed sweep
    # and every fsync of the storage waits behind a gigabyte of someone else's writes.
    os.sync()
    fill_seconds = time.perf_counter() - began
    settings = load(
        {
            "DATABASE_URL": url,
            "RECORDINGS_URL": f"file:{root}",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": "unused: every Twilio copy is already gone",
        }
    )
    return Runtime(settings, _engine=engine), fill_seconds


def measure(directory: Path, *, kept: int, due: int, batch_size: int, repeats: int) -> Run:
    """Fill, then sweep `repeats` due sets timed and one more under tracemalloc."""
    rt, fill_seconds = fill(directory, kept=kept, due=due, sets=repeats + 1)
    times: list[float] = []
    try:
        with rt.sessions() as session:
            total = session.scalar(select(func.count()).select_from(Recording))
            due_now = session.scalar(
                select(func.count()).where(
                    Recording.deleted_at.is_(None), Recording.due_at <= sweep_time(0)
                )
            )
        assert (total, due_now) == (kept + (repeats + 1) * due, due), (total, due_now)
        batches = 0
        for number in range(repeats):
            began = time.perf_counter()
            timed = sweep(rt, now=sweep_time(number), batch_size=batch_size)
            times.append(time.perf_counter() - began)
            if timed.deleted != due or timed.failed:
                raise SystemExit(f"sweep {number} deleted {timed.deleted} of {due}")
            batches = timed.batches

        tracemalloc.start()
        tracemalloc.reset_peak()
        began = time.perf_counter()
        traced = sweep(rt, now=sweep_time(repeats), batch_size=batch_size)
        traced_seconds = time.perf_counter() - began
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if traced.deleted != due or traced.failed:
            raise SystemExit(f"traced sweep deleted {traced.deleted} of {due}")
    finally:
        rt.close()
    return Run(
        total=total or 0,
        due=due,
        fill_seconds=fill_seconds,
        sweep_times=times,
        batches=batches,
        traced_seconds=traced_seconds,
        peak_bytes=peak,
    )


def report(run: Run) -> None:
    tries = ", ".join(f"{t:.2f}" for t in run.sweep_times)
    print(
        f"{run.total:>9,} recordings, {run.due:,} due: "
        f"fill {run.fill_seconds:6.1f} s | sweep {run.sweep_seconds:6.2f} s (of {tries}), "
        f"{run.per_second:7,.0f} deletions/s, {run.batches} batches | "
        f"peak memory {run.peak_bytes / 1024 / 1024:5.1f} MiB "
        f"(traced sweep {run.traced_seconds:.2f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000, help="recordings kept, big run")
    parser.add_argument("--small", type=int, default=100_000, help="recordings kept, small run")
    parser.add_argument("--due", type=int, default=10_000, help="recordings due per sweep")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=2, help="timed sweeps per database")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    base = args.dir or Path(tempfile.mkdtemp(prefix="retention-bench-"))
    try:
        runs = []
        for name, total in (("small", args.small), ("big", args.big)):
            # The totals include every due set: "10,000 due among 100,000" at each sweep.
            run = measure(
                base / name,
                kept=total - (args.repeats + 1) * args.due,
                due=args.due,
                batch_size=args.batch_size,
                repeats=args.repeats,
            )
            report(run)
            runs.append(run)
            shutil.rmtree(base / name, ignore_errors=True)
        small, big = runs
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)

    ratio = big.sweep_seconds / small.sweep_seconds
    memory_limit = MEMORY_LIMIT_FIXED + MEMORY_LIMIT_PER_BATCH_ROW * args.batch_size
    worst_peak = max(small.peak_bytes, big.peak_bytes)
    print(
        f"time ratio big/small: {ratio:.2f} (limit {RATIO_LIMIT}); "
        f"peak memory {worst_peak / 1024 / 1024:.1f} MiB "
        f"(limit {memory_limit / 1024 / 1024:.1f} MiB for batches of {args.batch_size})"
    )
    ok = ratio <= RATIO_LIMIT and worst_peak <= memory_limit
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
