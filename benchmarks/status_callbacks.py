"""Benchmark `/twilio/voice/status`: 5,000 signed status callbacks, 32 at a time, under gunicorn.

The app runs as it would in production (gunicorn, two workers) on a temporary SQLite file.
Calls are seeded first through the signed voice webhook; then every call's status callbacks
(child legs and the caller's own leg, for answered, no-answer, busy, failed and abandoned calls),
with about one in ten posted twice, are shuffled together and fired from a thread pool with a
`requests.Session` per thread. Afterwards the database is checked: every event stored exactly
once, every call's outcome and answerer right, one open callback request per missed caller.

Prints callbacks per second, latency, and the counts of errors, losses, duplicates stored and
wrong outcomes; exits 1 unless all of those are zero.

    python benchmarks/status_callbacks.py [--callbacks 5000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "c" * 32
TOKEN = "benchmark-token-status"
PUBLIC = "https://calls.example.test"
LINE = "+37167000002"
AGENT = "+37120000003"
DUPLICATE_SHARE = 0.1

# Each scenario: the child leg's statuses in Twilio's order, and the outcome they must give.
SCENARIOS: dict[str, tuple[list[str], str]] = {
    "answered": (["initiated", "ringing", "in-progress", "completed"], "answered"),
    "no-answer": (["initiated", "ringing", "no-answer"], "no-answer"),
    "busy": (["initiated", "busy"], "busy"),
    "failed": (["failed"], "failed"),
    "abandoned": (["initiated", "ringing", "canceled"], "abandoned"),
}


@dataclass
class Call:
    sid: str
    caller: str
    scenario: str
    forms: list[dict[str, str]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_calls(count: int, start: datetime) -> list[Call]:
    """Make `count` calls round-robin over the scenarios, with all their status callbacks."""
    calls = []
    names = list(SCENARIOS)
    for i in range(count):
        scenario = names[i % len(names)]
        call = Call("CA" + uuid.uuid4().hex, f"+3712{1_000_000 + i}", scenario)
        leg = "CA" + uuid.uuid4().hex
        at = start
        for sequence, status in enumerate(SCENARIOS[scenario][0]):
            at += timedelta(seconds=5)
            form = {
                "AccountSid": ACCOUNT_SID,
                "CallSid": leg,
                "ParentCallSid": call.sid,
                "From": call.caller,
                "To": AGENT,
                "CallStatus": status,
                "Direction": "outbound-dial",
                "SequenceNumber": str(sequence),
                "Timestamp": format_datetime(at),
                "CallbackSource": "call-progress-events",
            }
            if status == "completed":
                form["CallDuration"] = "42"
            call.forms.append(form)
        call.forms.append(
            {
                "AccountSid": ACCOUNT_SID,
                "CallSid": call.sid,
                "From": call.caller,
                "To": LINE,
                "CallStatus": "completed",
                "Direction": "inbound",
                "CallDuration": "60",
                "Timestamp": format_datetime(at + timedelta(seconds=1)),
            }
        )
        calls.append(call)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="status-bench-"))
    database = work / "bench.db"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "RECORDINGS_URL": f"file:{work}/recordings",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": PUBLIC,
        "SECRET_KEY": "bench",
        "PYTHONPATH": str(ROOT),
    }
    cc = [sys.executable, "-m", "callcenter"]
    for command in (
        ["db", "upgrade"],
        ["staff", "add", "akalnins", "--name", "Andris Kalniņš", "--phone", AGENT],
        ["line", "add", LINE, "--target", "staff:akalnins", "--hours", "always"],
    ):
        done = subprocess.run([*cc, *command], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"callcenter {' '.join(command)}: {done.stderr.strip()}")

    # Size the calls so that unique events plus about 10 % copies make the callbacks asked for.
    per_call = statistics.mean(len(s[0]) + 1 for s in SCENARIOS.values())
    call_count = max(1, round(args.callbacks * (1 - DUPLICATE_SHARE) / per_call))
    calls = build_calls(call_count, datetime.now(UTC))
    unique = [(call, form) for call in calls for form in call.forms]
    while len(unique) > args.callbacks:
        calls.pop()
        unique = [(call, form) for call in calls for form in call.forms]
    posts = unique + [rng.choice(unique) for _ in range(args.callbacks - len(unique))]
    rng.shuffle(posts)

    validator = RequestValidator(TOKEN)
    local = threading.local()

    def http() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session  # type: ignore[no-any-return]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (work / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "callcenter.wsgi:app",
        ],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def post(path: str, form: dict[str, str]) -> tuple[int, float]:
        signature = validator.compute_signature(PUBLIC + path, form)
        began = time.perf_counter()
        try:
            response = http().post(
                base + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=30
            )
            code = response.status_code
        except requests.RequestException:
            code = 0
        return code, time.perf_counter() - began

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "gunicorn did not come up:\n" + (work / "gunicorn.log").read_text()
                )
            time.sleep(0.2)

        with ThreadPoolExecutor(args.concurrency) as pool:
            seeded = list(
                pool.map(
                    lambda call: post(
                        "/twilio/voice",
                        {
                            "AccountSid": ACCOUNT_SID,
                            "CallSid": call.sid,
                            "From": call.caller,
                            "To": LINE,
                            "CallStatus": "ringing",
                            "Direction": "inbound",
                        },
                    )[0],
                    calls,
                )
            )
            if set(seeded) != {200}:
                raise SystemExit(f"seeding calls failed: {Counter(seeded)}")
            began = time.perf_counter()
            results = list(pool.map(lambda item: post("/twilio/voice/status", item[1]), posts))
            elapsed = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    codes = Counter(code for code, _ in results)
    latencies = sorted(seconds * 1000 for _, seconds in results)
    errors = sum(n for code, n in codes.items() if code != 204)

    # Check what was stored, straight from the database.
    from sqlalchemy import func, select

    from callcenter.calls.models import Call as CallRow
    from callcenter.calls.models import CallbackRequest, CallEvent
    from callcenter.db import make_engine, make_sessionmaker
    from callcenter.directory.models import Staff

    engine = make_engine(f"sqlite:///{database}")
    with make_sessionmaker(engine)() as session:
        per_call: dict[str, int] = {
            sid: n
            for sid, n in session.execute(
                select(CallRow.call_sid, func.count(CallEvent.id))
                .join(CallEvent, CallEvent.call_id == CallRow.id)
                .group_by(CallRow.call_sid)
            )
        }
        rows = {
            row.call_sid: (row.outcome, key)
            for row, key in session.execute(
                select(CallRow, Staff.key).outerjoin(Staff, Staff.id == CallRow.answered_by_id)
            )
        }
        open_requests = Counter(
            phone
            for (phone,) in session.execute(
                select(CallbackRequest.phone).where(CallbackRequest.status == "open")
            )
        )
        total_events = session.scalar(select(func.count()).select_from(CallEvent)) or 0
    engine.dispose()

    losses = sum(max(0, len(call.forms) - per_call.get(call.sid, 0)) for call in calls)
    extra = sum(max(0, per_call.get(call.sid, 0) - len(call.forms)) for call in calls)
    wrong = 0
    for call in calls:
        expected = SCENARIOS[call.scenario][1]
        outcome, answered_by = rows.get(call.sid, (None, None))
        ok = outcome == expected and (answered_by == "akalnins") == (expected == "answered")
        ok = ok and open_requests.get(call.caller, 0) == (0 if expected == "answered" else 1)
        wrong += not ok

    print(f"calls seeded:            {len(calls)}")
    print(f"callbacks posted:        {len(posts)} ({len(posts) - len(unique)} copies)")
    print(f"concurrency / workers:   {args.concurrency} / {args.workers} (gunicorn, SQLite)")
    print(f"elapsed:                 {elapsed:.2f} s")
    print(f"callbacks per second:    {len(posts) / elapsed:.0f}")
    print(
        f"latency p50 / p99 / max: {statistics.median(latencies):.1f} / "
        f"{latencies[int(len(latencies) * 0.99) - 1]:.1f} / {latencies[-1]:.1f} ms"
    )
    print(f"responses:               {dict(codes)}")
    print(f"events stored:           {total_events} of {len(unique)} unique")
    print(f"errors:                  {errors}")
    print(f"losses:                  {losses}")
    print(f"stored twice:            {extra}")
    print(f"wrong outcomes:          {wrong}")
    sys.exit(1 if errors or losses or extra or wrong else 0)


if __name__ == "__main__":
    main()
