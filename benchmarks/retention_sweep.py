"""Benchmark the retention sweep: its cost follows what is due, not what is kept.

Fills a SQLite database with KEPT recordings (default 1,000,000) and, beside them, two sets of
DUE recordings (default 10,000 each) with their tiny objects on local disk, plus one `stored`
log entry per recording (a realistic log). Then runs the real sweep (`retention.sweep.sweep`)
twice: at a `now` where exactly the first set is due (timed, untraced), and at a `now` where
exactly the second set is due (under tracemalloc, for the peak of Python memory). The same is
done with 100,000 kept recordings, and the two timed sweeps are compared.

    python benchmarks/retention_sweep.py [--big 1000000] [--small 100000] [--due 10000]
                                         [--batch-size 1000] [--dir PATH]

Passes (exit 0) when the big database's sweep takes at most 1.3 times the small one's and
the peak memory of each sweep stays within MEMORY_LIMIT_PER_BATCH_ROW x batch size.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from callcenter import migrate  # noqa: E402
from callcenter.db import make_engine  # noqa: E402
from callcenter.models import Recording, RetentionEntry  # noqa: E402
from callcenter.runtime import Runtime  # noqa: E402
from callcenter.settings import load  # noqa: E402
from retention.sweep import sweep  # noqa: E402

# Rows per executemany: big enough that per-statement overhead vanishes.
FILL_CHUNK = 50_000
# The sweep keeps about one batch of small records in memory; a generous bound per row.
MEMORY_LIMIT_PER_BATCH_ROW = 4 * 1024
RATIO_LIMIT = 1.3

NOW = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)
# Set A is due a day before NOW_A, set B between NOW_A and NOW_B; kept ones are due later.
NOW_A = NOW
NOW_B = NOW + timedelta(hours=12)
ACCOUNT_SID = "AC" + "0" * 31 + "1"


@dataclass
class Run:
    kept: int
    due: int
    fill_seconds: float
    sweep_seconds: float
    deleted: int
    batches: int
    traced_seconds: float
    traced_deleted: int
    peak_bytes: int

    @property
    def per_second(self) -> float:
        return self.deleted / self.sweep_seconds if self.sweep_seconds else float("inf")


def _sid(prefix: str, n: int) -> str:
    return prefix + f"{n:032x}"


def _rows(start: int, stop: int, *, kept: int, due: int) -> list[dict[str, Any]]:
    """Rows [start, stop): the first 2*due are the two due sets, the rest are kept."""
    rows = []
    for n in range(start, stop):
        if n < due:
            due_at = NOW_A - timedelta(days=1, seconds=n)
        elif n < 2 * due:
            due_at = NOW_B - timedelta(seconds=1 + (n - due))
        else:
            # Kept: due at any time in the next three months.
            due_at = NOW_B + timedelta(seconds=1 + (n * 7919) % (90 * 86_400))
        started = due_at - timedelta(days=91)
        sid = _sid("RE", n)
        rows.append(
            {
                "recording_sid": sid,
                "call_sid": _sid("CA", n),
                "status": "stored",
                "started_at": started,
                "due_at": due_at,
                "storage_key": f"recordings/{n % 256:02x}/{sid}.wav",
                "size_bytes": 4,
                "sha256": hashlib.sha256(b"RIFF").hexdigest(),
                "attempts": 1,
                "on_hold": False,
                "stored_at": started,
                "provider_deleted_at": started,
                "created_at": started,
            }
        )
    return rows


def fill(directory: Path, *, kept: int, due: int) -> tuple[Runtime, float]:
    """Create the database and the due objects; return a runtime on them and the fill time."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    url = f"sqlite:///{directory / 'callcenter.db'}"
    began = time.perf_counter()
    engine = make_engine(url)
    migrate.upgrade(engine)
    total = kept + 2 * due
    with engine.begin() as connection:
        # Bulk loading only: the benchmark's database is thrown away afterwards.
        connection.exec_driver_sql("PRAGMA synchronous=OFF")
        for start in range(0, total, FILL_CHUNK):
            stop = min(total, start + FILL_CHUNK)
            rows = _rows(start, stop, kept=kept, due=due)
            connection.execute(insert(Recording), rows)
            connection.execute(
                insert(RetentionEntry),
                [
                    {
                        "seq": n + 1,
                        "at": row["stored_at"],
                        "event": "stored",
                        "recording_sid": row["recording_sid"],
                        "actor": "ingest",
                        "details": {"sha256": row["sha256"], "size": 4},
                        # Not a real chain (the sweep only reads the tail); unique like one.
                        "prev_hash": f"{n:064x}",
                        "hash": f"{n + 1:064x}",
                    }
                    for n, row in zip(range(start, stop), rows, strict=True)
                ],
            )
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    root = directory / "recordings"
    for n in range(2 * due):
        path = root / f"recordings/{n % 256:02x}/{_sid('RE', n)}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
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


def measure(directory: Path, *, kept: int, due: int, batch_size: int) -> Run:
    rt, fill_seconds = fill(directory, kept=kept, due=due)
    try:
        began = time.perf_counter()
        timed = sweep(rt, now=NOW_A, batch_size=batch_size)
        sweep_seconds = time.perf_counter() - began

        tracemalloc.start()
        tracemalloc.reset_peak()
        began = time.perf_counter()
        traced = sweep(rt, now=NOW_B, batch_size=batch_size)
        traced_seconds = time.perf_counter() - began
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        rt.close()
    if timed.deleted != due or traced.deleted != due or timed.failed or traced.failed:
        raise SystemExit(f"sweep deleted {timed.deleted}/{traced.deleted} of {due} each")
    return Run(
        kept=kept,
        due=due,
        fill_seconds=fill_seconds,
        sweep_seconds=sweep_seconds,
        deleted=timed.deleted,
        batches=timed.batches,
        traced_seconds=traced_seconds,
        traced_deleted=traced.deleted,
        peak_bytes=peak,
    )


def report(run: Run) -> None:
    print(
        f"{run.kept + 2 * run.due:>9,} recordings, {run.due:,} due: "
        f"fill {run.fill_seconds:6.1f} s | sweep {run.sweep_seconds:6.2f} s, "
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
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    base = args.dir or Path(tempfile.mkdtemp(prefix="retention-bench-"))
    try:
        # The totals include both due sets: "10,000 due among 100,000" at each sweep.
        small = measure(
            base / "small", kept=args.small - 2 * args.due, due=args.due, batch_size=args.batch_size
        )
        report(small)
        big = measure(
            base / "big", kept=args.big - 2 * args.due, due=args.due, batch_size=args.batch_size
        )
        report(big)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)

    ratio = big.sweep_seconds / small.sweep_seconds
    memory_limit = MEMORY_LIMIT_PER_BATCH_ROW * args.batch_size
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
