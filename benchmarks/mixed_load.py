"""A mixed load on PostgreSQL: calls arriving together with every callback one real call makes.

The Procfile's own `web` with 4 workers on a fresh PostgreSQL database, for a minute: threads
play Twilio's part for call after call (the voice webhook; the child leg's status callbacks;
the dial's end; the recording; the caller's own completed status), several calls at once,
while `/healthz` is polled. Then the database is checked against what was sent: every call's
row and outcome, who answered, every recording. Prints each route's p50/p99 and the counts;
exits 1 on any error or anything lost.

    python benchmarks/mixed_load.py [--seconds 60] [--callers 16] [--workers 4]

`BENCH_DATABASE_URL` names the PostgreSQL server (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webhook_throughput import (
    ACCOUNT_SID,
    CALLER,
    LINE,
    PUBLIC,
    ROOT,
    TOKEN,
    database,
    drop,
    free_port,
    prepare,
    serve,
    wait_up,
)

SUBSTITUTE = "+37120000002"


class Caller(threading.Thread):
    """Plays Twilio's part for one call after another until told to stop."""

    def __init__(self, base: str, stop: threading.Event, record: dict[str, list[float]]) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.stop = stop
        self.latency = record
        self.session = requests.Session()
        self.validator = RequestValidator(TOKEN)
        self.calls: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def post(self, route: str, form: dict[str, str], expect: int) -> requests.Response | None:
        signature = self.validator.compute_signature(PUBLIC + route, form)
        started = time.perf_counter()
        try:
            answer = self.session.post(
                self.base + route, data=form, headers={"X-Twilio-Signature": signature}, timeout=15
            )
        except requests.RequestException as exc:
            self.errors.append(f"{route}: {type(exc).__name__}")
            return None
        self.latency[route].append((time.perf_counter() - started) * 1000)
        if answer.status_code != expect:
            self.errors.append(f"{route}: {answer.status_code} {answer.text[:80]!r}")
            return None
        return answer

    def run(self) -> None:
        while not self.stop.is_set():
            call, leg, recording = (f"CA{uuid.uuid4().hex}", f"CA{uuid.uuid4().hex}",
                                    f"RE{uuid.uuid4().hex}")  # fmt: skip
            base = {"AccountSid": ACCOUNT_SID, "From": CALLER, "To": LINE}
            answer = self.post(
                "/twilio/voice", {**base, "CallSid": call, "CallStatus": "ringing"}, 200
            )
            if answer is None or b"<Dial" not in answer.content:
                self.errors.append(f"/twilio/voice: no dial for {call}")
                continue
            stamp = format_datetime(datetime.now(UTC))
            for number, status in enumerate(
                ("initiated", "ringing", "in-progress", "completed"), 1
            ):
                form = {
                    **base,
                    "To": SUBSTITUTE,
                    "CallSid": leg,
                    "ParentCallSid": call,
                    "CallStatus": status,
                    "SequenceNumber": str(number),
                    "Timestamp": stamp,
                }
                if status == "completed":
                    form["CallDuration"] = "30"
                self.post("/twilio/voice/status", form, 204)  # fmt: skip
            # The substitute pressed 1 in the whisper: only then does the leg count as answered.
            self.post("/twilio/voice/whisper", {**base, "To": SUBSTITUTE, "CallSid": leg,
                                                "ParentCallSid": call, "Digits": "1"}, 200)  # fmt: skip
            self.post("/twilio/voice/dial-complete", {**base, "CallSid": call,
                      "CallStatus": "in-progress", "DialCallStatus": "completed",
                      "DialCallSid": leg, "DialCallDuration": "30", "DialBridged": "true"}, 200)  # fmt: skip
            self.post("/twilio/recording-status", {"AccountSid": ACCOUNT_SID, "CallSid": call,
                      "RecordingSid": recording, "RecordingStatus": "completed",
                      "RecordingDuration": "30", "RecordingChannels": "2",
                      "RecordingStartTime": stamp, "RecordingSource": "DialVerb"}, 204)  # fmt: skip
            self.post("/twilio/voice/status", {**base, "CallSid": call, "CallStatus": "completed",
                      "CallDuration": "40", "SequenceNumber": "9", "Timestamp": stamp}, 204)  # fmt: skip
            self.calls.append((call, recording))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--callers", type=int, default=16, help="calls in flight at once")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mixed-load-"))
    url, dropped = database(args.database, work)
    env = {**os.environ, "DATABASE_URL": url, "RECORDINGS_URL": f"file:{work}/recordings",
           "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC,
           "SECRET_KEY": "bench-" + uuid.uuid4().hex, "WEB_CONCURRENCY": str(args.workers),
           "PYTHONPATH": f"{ROOT}:{work}", "LOG_LEVEL": "WARNING"}  # fmt: skip
    prepare(env)

    port = free_port()
    server = serve("callcenter.wsgi:app", env, work, port)
    base = f"http://127.0.0.1:{port}"
    latency: dict[str, list[float]] = defaultdict(list)
    health = {"polls": 0, "bad": 0}
    try:
        wait_up(f"{base}/healthz", server)
        stop = threading.Event()
        callers = [Caller(base, stop, latency) for _ in range(args.callers)]

        def poll() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    ok = requests.get(f"{base}/healthz", timeout=5).status_code == 200
                except requests.RequestException:
                    ok = False
                latency["/healthz"].append((time.perf_counter() - started) * 1000)
                health["polls"] += 1
                health["bad"] += 0 if ok else 1
                stop.wait(0.5)

        poller = threading.Thread(target=poll, daemon=True)
        for thread in (*callers, poller):
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in (*callers, poller):
            thread.join(30)
    finally:
        server.terminate()
        server.wait()

    sent = [pair for caller in callers for pair in caller.calls]
    errors = [error for caller in callers for error in caller.errors]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        outcomes = dict(connection.execute(text(
            "SELECT c.call_sid, c.outcome || '/' || coalesce(s.key, '-') || '/' || "
            "CASE WHEN c.as_substitute THEN 'sub' ELSE 'direct' END "
            "FROM calls c LEFT JOIN staff s ON s.id = c.answered_by_id")).all())  # fmt: skip
        recordings = set(connection.execute(text("SELECT recording_sid FROM recordings")).scalars())
    engine.dispose()
    if dropped:
        drop(dropped)
    lost_calls = [call for call, _ in sent if call not in outcomes]
    wrong = [
        call for call, _ in sent if call in outcomes and outcomes[call] != "answered/lozola/sub"
    ]
    lost_recordings = [rec for _, rec in sent if rec not in recordings]

    print(f"{args.database}, Procfile web ({args.workers} workers), {args.callers} calls at "
          f"once for {args.seconds} s: {len(sent)} calls, {sum(map(len, latency.values()))} "
          f"requests")  # fmt: skip
    print(f"{'route':34} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for route, values in sorted(latency.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{route:34} {len(values):9d} {statistics.median(values):8.1f} {p99:8.1f}")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"/healthz not 200: {health['bad']} of {health['polls']}")
    print(f"calls lost: {len(lost_calls)}; outcomes wrong: {len(wrong)}"
          + (f" (e.g. {outcomes[wrong[0]]})" if wrong else "")
          + f"; recordings lost: {len(lost_recordings)}")  # fmt: skip
    if errors or health["bad"] or lost_calls or wrong or lost_recordings:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
