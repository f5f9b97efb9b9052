"""Benchmark ingestion: a 50 MB recording and a batch of 1,000 small ones, Twilio -> S3.

Starts the fake Twilio API and moto's S3 server on loopback in a child process (so their
memory is not counted), ingests through the real code path (`ingest_pending`: claim, stream,
verify by re-reading, log, delete at Twilio), and prints throughput and this process's peak
memory above idle. Peak RSS comes from the kernel's high-water mark (VmHWM), reset before each
run through /proc/self/clear_refs, checked against a 5 ms sampler of VmRSS.

    python benchmarks/ingest.py [--big-mb 50] [--small 1000] [--small-kb 32]

Exits non-zero if the big recording needs 30 MB or more above idle.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024
LIMIT_ABOVE_IDLE = 30 * MB
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "benchmark-token"


def serve(conn: Any, recordings: list[tuple[str, int]]) -> None:
    """Child process: run fake Twilio and moto, report their URLs, wait to be told to stop."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from tests.fakes.s3 import start_moto
    from tests.fakes.twilio_api import FakeTwilio

    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
    for sid, size in recordings:
        fake.add(sid, size=size, start_time=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    moto, moto_url = start_moto()
    conn.send((fake.base_url, moto_url))
    conn.recv()
    conn.send({"media_gets": fake.count("GET", ".wav"), "deletes": fake.count("DELETE", ".json")})
    fake.stop()
    moto.stop()


def status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakSampler:
    """Sample VmRSS every few milliseconds and keep the highest value (bytes)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kb("VmRSS") * 1024)
            time.sleep(0.005)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def measured(label: str, run: Any) -> tuple[float, int, int]:
    """Run `run()` and return (seconds, peak RSS above idle by VmHWM, by sampling)."""
    import gc

    gc.collect()
    idle = status_kb("VmRSS") * 1024
    hwm_ok = reset_peak()
    with PeakSampler() as sampler:
        started = time.perf_counter()
        run()
        seconds = time.perf_counter() - started
    hwm = status_kb("VmHWM") * 1024 if hwm_ok else sampler.peak
    print(f"  [{label}] idle RSS {idle / MB:.1f} MB", flush=True)
    return seconds, max(hwm - idle, 0), max(sampler.peak - idle, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=50)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--small-kb", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=4, help="Concurrent ingestion workers for the batch."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    big_sid = "RE" + uuid.uuid4().hex
    warm_sid = "RE" + uuid.uuid4().hex
    small = [("RE" + uuid.uuid4().hex, args.small_kb * 1024 + 44) for _ in range(args.small)]
    fakes = [(big_sid, args.big_mb * MB), (warm_sid, 64 * 1024), *small]

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=serve, args=(child, fakes), daemon=True)
    server.start()
    twilio_url, moto_url = parent.recv()

    os.environ.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-north-1",
        }
    )
    import boto3

    from callcenter import migrate
    from callcenter.db import make_engine, transaction
    from callcenter.recordings.callback import RecordingCallback, record_callback
    from callcenter.recordings.ingest import ingest_pending
    from callcenter.runtime import Runtime
    from callcenter.settings import load

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
    )
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    settings = load(
        {
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "RECORDINGS_URL": f"s3://{bucket}/recordings",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": twilio_url,
        }
    )
    runtime = Runtime(settings, _engine=make_engine(settings.database_url))
    migrate.upgrade(runtime.engine)

    def queue(sids: list[str]) -> None:
        now = datetime.now(UTC)
        with transaction(runtime.sessions) as session:
            for sid in sids:
                record_callback(
                    session,
                    RecordingCallback(sid, "CA" + uuid.uuid4().hex, "completed", now),
                    settings,
                    now=now,
                )

    def ingest() -> Any:
        return ingest_pending(
            runtime.sessions, runtime.storage, runtime.twilio, now=datetime.now(UTC)
        )

    # Warm up: imports, connections, clients and the database, so idle means idle.
    queue([warm_sid])
    assert ingest().stored == [warm_sid]

    print(f"ingest benchmark: fake Twilio {twilio_url} -> moto S3 {moto_url} (loopback)")
    queue([big_sid])
    results: dict[str, Any] = {}
    seconds, hwm, sampled = measured("big", lambda: results.setdefault("big", ingest()))
    assert results["big"].stored == [big_sid], results["big"]
    print(
        f"  one {args.big_mb} MB recording: {seconds:.2f} s, "
        f"{args.big_mb / seconds:.1f} MB/s (download + upload + verification re-read)"
    )
    print(
        f"  peak memory above idle: {hwm / MB:.1f} MB (VmHWM), "
        f"{sampled / MB:.1f} MB (sampled VmRSS)"
    )

    def ingest_concurrently() -> None:
        # Each worker as a separate process would have it: its own HTTP session and S3 client.
        from callcenter.adapters.storage import open_storage
        from callcenter.adapters.twilio_api import TwilioApi

        reports: list[Any] = []

        def work() -> None:
            reports.append(
                ingest_pending(
                    runtime.sessions,
                    open_storage(settings),
                    TwilioApi(settings),
                    now=datetime.now(UTC),
                )
            )

        threads = [threading.Thread(target=work) for _ in range(args.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results["small"] = [sid for report in reports for sid in report.stored]

    queue([sid for sid, _ in small])
    seconds, small_hwm, small_sampled = measured("batch", ingest_concurrently)
    assert sorted(results["small"]) == sorted(sid for sid, _ in small)
    total_mb = args.small * args.small_kb / 1024
    print(
        f"  {args.small} recordings of {args.small_kb} KB, {args.workers} workers: {seconds:.2f} s, "
        f"{args.small / seconds:.0f} recordings/s, {total_mb / seconds:.1f} MB/s"
    )
    print(
        f"  peak memory above idle: {small_hwm / MB:.1f} MB (VmHWM), "
        f"{small_sampled / MB:.1f} MB (sampled VmRSS)"
    )

    parent.send("stop")
    counts = parent.recv()
    server.join(timeout=10)
    print(
        f"  Twilio saw {counts['media_gets']} media downloads and {counts['deletes']} deletions "
        f"for {args.small + 2} recordings"
    )
    ok = hwm < LIMIT_ABOVE_IDLE
    print(
        f"  memory bound for the big recording (< {LIMIT_ABOVE_IDLE // MB} MB above idle): "
        + ("ok" if ok else "EXCEEDED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
