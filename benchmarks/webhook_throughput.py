"""Benchmark every Twilio webhook under the Procfile's own `web` command, beside a bare app.

For each route, paired rounds: the app, then a bare Flask app served by the very same gunicorn
command (worker class, threads, workers), both driven by `wrk` (Debian's package) with the same
requests. Every request is new: a new call for `/twilio/voice`; for the callbacks, distinct
events of calls that exist (each round first places its calls through `/twilio/voice`, each
once). A round's file holds `--most` x `--seconds` distinct requests (default 12,000 a
second, more than even the bare app serves here), so the app never sees a repeat.
Prints requests per second, p50 and p99 per round, and per route the medians of the ratios to
the bare app (throughput, and p99 over the bare app's p99).

    python benchmarks/webhook_throughput.py [--database sqlite|postgres] [--route voice ...]
        [--rounds 3] [--seconds 5] [--connections 32] [--workers 2] [--most 12000]

PostgreSQL: a fresh database is made on the server `BENCH_DATABASE_URL` names (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlencode

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "b" * 32
TOKEN = "benchmark-token"
PUBLIC = "https://calls.example.test"
LINE = "+37167000002"
CALLER = "+37129111111"
AGENT = "+37120000002"
ROUTES = ("voice", "status", "dial-complete", "recording-status")
# Requests a call makes in the measured file: status sends the three of a dialed leg.
EVENTS_PER_CALL = {"voice": 1, "status": 3, "dial-complete": 1, "recording-status": 1}
PATHS = {
    "voice": "/twilio/voice",
    "status": "/twilio/voice/status",
    "dial-complete": "/twilio/voice/dial-complete",
    "recording-status": "/twilio/recording-status",
}

WRK_SCRIPT = r"""
local requests = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local stride = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % stride == id then
      local path, sig, body = line:match("([^\t]+)\t([^\t]+)\t(.*)")
      table.insert(requests, wrk.format("POST", path, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = sig,
      }, body))
    end
    i = i + 1
  end
  n = 0
  if args[3] == "once" then
    -- Each request once (placing calls): the thread stops when all of its are answered.
    local answered = 0
    function response()
      answered = answered + 1
      if answered >= #requests then wrk.thread:stop() end
    end
  end
end

function request()
  n = n + 1
  if n > #requests then n = 1 end
  return requests[n]
end
"""

BARE_APP = """
from flask import Flask, Response
TWIML = open({twiml!r}, "rb").read()
HANG_UP = b'<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'
app = Flask(__name__)

@app.get("/healthz")
def health():
    return {{"database": "ok", "storage": "ok"}}

@app.post("/twilio/voice")
def voice():
    return Response(TWIML, mimetype="text/xml")

@app.post("/twilio/voice/dial-complete")
def dial_complete():
    return Response(HANG_UP, mimetype="text/xml")

@app.post("/twilio/voice/status")
@app.post("/twilio/recording-status")
def callback():
    return Response(status=204)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            return command.strip()
    raise SystemExit("no web process in the Procfile")


def serve(app_spec: str, env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    """Start the Procfile's web command on loopback, with `app_spec` as its app."""
    command = procfile_web().replace("0.0.0.0:", "127.0.0.1:")
    if app_spec != "callcenter.wsgi:app":
        command = command.replace("callcenter.wsgi:app", app_spec)
    assert command.startswith("gunicorn "), command
    command = f"{shlex.quote(sys.executable)} -m {command}"
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        env={**env, "PORT": str(port)},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=(cwd / f"gunicorn-{port}.log").open("w"),
    )


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def run_wrk(
    port: int, script: Path, data: Path, seconds: int, connections: int, *, once: bool = False
) -> dict[str, float]:
    """wrk for `seconds`, cycling through `data`'s requests; `once`: each sent once, at most."""
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}", "--", str(data), "2",
         "once" if once else "loop"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(name: str) -> float:
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"),
            "non2xx": int(errors.group(1)) if errors else 0}  # fmt: skip


class Requests:
    """Signed requests, one line each (path TAB signature TAB body), written to files."""

    def __init__(self) -> None:
        self.validator = RequestValidator(TOKEN)

    def line(self, path: str, form: dict[str, str]) -> str:
        signature = self.validator.compute_signature(PUBLIC + path, form)
        return f"{path}\t{signature}\t{urlencode(form)}\n"

    def calls(self, sids: list[str]) -> Iterator[str]:
        for sid in sids:
            yield self.line(PATHS["voice"], {
                "CallSid": sid, "AccountSid": ACCOUNT_SID, "From": CALLER, "To": LINE,
                "CallStatus": "ringing", "Direction": "inbound",
            })  # fmt: skip

    def events(self, route: str, sids: list[str]) -> Iterator[str]:
        """Distinct events of existing calls: the mix one answered call produces."""
        stamp = format_datetime(datetime.now(UTC))
        for sid in sids:
            leg = "CA" + uuid.uuid4().hex
            if route == "status":
                for number, status in enumerate(("initiated", "ringing", "in-progress"), 1):
                    yield self.line(PATHS["status"], {
                        "CallSid": leg, "ParentCallSid": sid, "AccountSid": ACCOUNT_SID,
                        "From": CALLER, "To": AGENT, "CallStatus": status,
                        "SequenceNumber": str(number), "Timestamp": stamp,
                        "Direction": "outbound-dial",
                    })  # fmt: skip
            elif route == "dial-complete":
                yield self.line(PATHS["dial-complete"], {
                    "CallSid": sid, "AccountSid": ACCOUNT_SID, "From": CALLER, "To": LINE,
                    "CallStatus": "in-progress", "DialCallStatus": "completed",
                    "DialCallSid": leg, "DialCallDuration": "42", "DialBridged": "true",
                })  # fmt: skip
            elif route == "recording-status":
                yield self.line(PATHS["recording-status"], {
                    "AccountSid": ACCOUNT_SID, "CallSid": sid,
                    "RecordingSid": "RE" + uuid.uuid4().hex,
                    "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
                    f"/Recordings/RE{uuid.uuid4().hex}",
                    "RecordingStatus": "completed", "RecordingDuration": "42",
                    "RecordingChannels": "2", "RecordingStartTime": stamp,
                    "RecordingSource": "DialVerb",
                })  # fmt: skip


def missing_calls(url: str, sids: list[str]) -> list[str]:
    """The calls of `sids` that are not in the call log."""
    location = make_url(url)
    if location.drivername == "postgresql":
        location = location.set(drivername="postgresql+psycopg")
    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            stored = set(connection.execute(text("SELECT call_sid FROM calls")).scalars())
    finally:
        engine.dispose()
    return [sid for sid in sids if sid not in stored]


def place(port: int, script: Path, maker: Requests, url: str, sids: list[str], path: Path,
          connections: int) -> None:  # fmt: skip
    """Place the calls `sids` (not measured), each once, and again any the log lacks."""
    for _ in range(5):
        path.write_text("".join(maker.calls(sids)))
        run_wrk(port, script, path, 60, connections, once=True)
        sids = missing_calls(url, sids)
        if not sids:
            return
    raise SystemExit(f"{len(sids)} calls could not be placed")


def database(kind: str, work: Path) -> tuple[str, str | None]:
    """Return (DATABASE_URL, name of a PostgreSQL database to drop afterwards)."""
    if kind == "sqlite":
        return f"sqlite:///{work}/bench.db", None
    server = make_url(
        os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False), name


def drop(name: str) -> None:
    server = make_url(
        os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    admin = create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def prepare(env: dict[str, str]) -> None:
    """Migrate and make the directory both benchmarks use: a line to a person who is away."""
    cc = [sys.executable, "-m", "callcenter"]
    now = datetime.now(UTC)
    for command in (
        ["db", "upgrade"],
        ["staff", "add", "jberzins", "--name", "Jānis Bērziņš", "--phone", "20000001"],
        ["staff", "add", "lozola", "--name", "Līga Ozola", "--phone", "20000002"],
        ["line", "add", LINE, "--target", "staff:jberzins", "--hours", "always"],
        ["absence", "add", "jberzins", "--start", (now - timedelta(days=1)).isoformat(),
         "--end", (now + timedelta(days=1)).isoformat(), "--substitute", "lozola"],
    ):  # fmt: skip
        done = subprocess.run([*cc, *command], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(command)}: {done.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--route", choices=ROUTES, action="append", help="default: every route")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--most", type=int, default=12_000,
        help="distinct requests a round can send per second (default 12,000: more than the "
        "bare app serves here); any more repeat the round's requests",
    )  # fmt: skip
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    routes = args.route or list(ROUTES)

    work = Path(tempfile.mkdtemp(prefix="webhooks-bench-"))
    url, dropped = database(args.database, work)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "RECORDINGS_URL": f"file:{work}/recordings",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": PUBLIC,
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "WEB_CONCURRENCY": str(args.workers),
        "PYTHONPATH": f"{ROOT}:{work}",
        "LOG_LEVEL": "WARNING",
    }
    prepare(env)

    maker = Requests()
    script = work / "webhooks.lua"
    script.write_text(textwrap.dedent(WRK_SCRIPT))
    app_port, bare_port = free_port(), free_port()
    app = serve("callcenter.wsgi:app", env, work, app_port)
    bare = None
    results: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {r: [] for r in routes}
    try:
        wait_up(f"http://127.0.0.1:{app_port}/healthz", app)
        warm = work / "warm.tsv"
        warm.write_text("".join(maker.calls([f"CA{uuid.uuid4().hex}" for _ in range(2000)])))
        first = warm.read_text().splitlines()[0].split("\t")
        sample = requests.post(
            f"http://127.0.0.1:{app_port}{first[0]}", data=first[2],
            headers={"X-Twilio-Signature": first[1],
                     "Content-Type": "application/x-www-form-urlencoded"}, timeout=5,
        )  # fmt: skip
        assert sample.status_code == 200 and b"<Dial" in sample.content, sample.text
        (work / "twiml.xml").write_bytes(sample.content)
        (work / "bare.py").write_text(BARE_APP.format(twiml=str(work / "twiml.xml")))
        bare = serve("bare:app", env, work, bare_port)
        wait_up(f"http://127.0.0.1:{bare_port}/healthz", bare)
        for port in (app_port, bare_port):
            run_wrk(port, script, warm, 1, args.connections)
        distinct = args.most * args.seconds
        for number in range(args.rounds):
            for route in routes:
                data = work / f"{route}{number}.tsv"
                sids = [f"CA{uuid.uuid4().hex}" for _ in range(distinct // EVENTS_PER_CALL[route])]
                if route == "voice":
                    data.write_text("".join(maker.calls(sids)))
                else:
                    # The calls must exist: placed first, each once (not measured). A repeated
                    # call would be a retry, which takes a slower path than a new call.
                    place(app_port, script, maker, url, sids, work / "placed.tsv",
                          args.connections)  # fmt: skip
                    data.write_text("".join(maker.events(route, sids)))
                real = run_wrk(app_port, script, data, args.seconds, args.connections)
                plain = run_wrk(bare_port, script, data, args.seconds, args.connections)
                results[route].append((real, plain))
                print(
                    f"round {number + 1} {route:16} app {real['rps']:6.0f}/s p99 "
                    f"{real['p99']:6.2f} ms | bare {plain['rps']:6.0f}/s p99 {plain['p99']:6.2f} ms"
                    f" | ratio {real['rps'] / plain['rps']:.2f}"
                    + (f" | non-2xx {real['non2xx']:.0f}" if real["non2xx"] else ""),
                    flush=True,
                )
    finally:
        for server in (app, bare):
            if server is not None:
                server.terminate()
                server.wait()
        if dropped:
            drop(dropped)
    print(f"\n{args.database}, Procfile web ({args.workers} workers), wrk {args.connections} "
          f"connections, {args.rounds} paired rounds of {args.seconds} s")  # fmt: skip
    print(f"{'route':18} {'app/s':>8} {'bare/s':>8} {'ratio':>6} {'p99 ms':>8} {'p99/bare':>9}")
    for route, pairs in results.items():
        ratio = statistics.median(r["rps"] / p["rps"] for r, p in pairs)
        p99 = statistics.median(r["p99"] for r, _ in pairs)
        p99_ratio = statistics.median(r["p99"] / p["p99"] for r, p in pairs)
        app_rps = statistics.median(r["rps"] for r, _ in pairs)
        bare_rps = statistics.median(p["rps"] for _, p in pairs)
        errors = sum(r["non2xx"] for r, _ in pairs)
        print(f"{route:18} {app_rps:8.0f} {bare_rps:8.0f} {ratio:6.2f} {p99:8.2f} {p99_ratio:8.1f}x"
              + (f"  non-2xx {errors:.0f}" if errors else ""))  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
