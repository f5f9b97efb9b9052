"""Benchmark `/twilio/voice`: the app under gunicorn beside a bare Flask app, same load.

Both are served by gunicorn with two workers; the app on SQLite with a real directory (a line,
a substitute in force), every request a new signed call (a new row each). The bare app answers
the same TwiML from a constant. `wrk` (Debian's package) drives both with 32 connections, in
paired rounds (the app, then the bare app) so that a drift in the machine's speed hits both.
Prints requests per second, p50 and p99 latency per round, and the medians of the rounds.
Goal: ratio >= 0.5, p99 < 50 ms.

    python benchmarks/voice_throughput.py [--rounds 5] [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "b" * 32
TOKEN = "benchmark-token"
PUBLIC = "https://calls.example.test"
LINE = "+37167000002"

WRK_SCRIPT = r"""
local requests = {}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local stride = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % stride == id then
      local sig, body = line:match("([^\t]+)\t(.*)")
      table.insert(requests, wrk.format("POST", "/twilio/voice", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = sig,
      }, body))
    end
    i = i + 1
  end
  n = 0
end

function request()
  n = n + 1
  if n > #requests then n = 1 end
  return requests[n]
end
"""

BARE_APP = """
from flask import Flask, Response
TWIML = open({path!r}, "rb").read()
app = Flask(__name__)

@app.post("/twilio/voice")
def voice():
    return Response(TWIML, mimetype="text/xml")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


WORKERS = 2
THREADS = 1


def gunicorn(app: str, env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    threads = ["--threads", str(THREADS)] if THREADS > 1 else []
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(WORKERS),
            *threads,
            "--bind",
            f"127.0.0.1:{port}",
            app,
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_wrk(
    port: int, script: Path, data: Path, stride: int, seconds: int, connections: int
) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(stride),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            str(data),
            str(stride),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(name: str) -> float:
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "requests": total,
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def write_calls(path: Path, first: int, count: int) -> None:
    """Write `count` distinct signed calls (signature TAB body), CallSids from `first` on."""
    validator = RequestValidator(TOKEN)
    with path.open("w") as handle:
        for i in range(first, first + count):
            form = {
                "CallSid": f"CA{i:032x}",
                "AccountSid": ACCOUNT_SID,
                "From": "+37129111111",
                "To": LINE,
                "CallStatus": "ringing",
                "Direction": "inbound",
            }
            signature = validator.compute_signature(PUBLIC + "/twilio/voice", form)
            handle.write(f"{signature}\t{urlencode(form)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds (app, then bare)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--calls", type=int, default=40_000, help="distinct signed calls a round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="gthread workers when > 1")
    args = parser.parse_args()
    global WORKERS, THREADS
    WORKERS, THREADS = args.workers, args.threads
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="voice-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{work}/bench.db"),
        "RECORDINGS_URL": f"file:{work}/recordings",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": PUBLIC,
        "SECRET_KEY": "bench",
        "PYTHONPATH": str(ROOT),
    }
    cc = [sys.executable, "-m", "callcenter"]
    now = datetime.now(UTC)
    for command in (
        ["db", "upgrade"],
        ["staff", "add", "jberzins", "--name", "Jānis Bērziņš", "--phone", "20000001"],
        ["staff", "add", "lozola", "--name", "Līga Ozola", "--phone", "20000002"],
        ["line", "add", LINE, "--target", "staff:jberzins", "--hours", "always"],
        [
            "absence",
            "add",
            "jberzins",
            "--start",
            (now - timedelta(days=1)).isoformat(),
            "--end",
            (now + timedelta(days=1)).isoformat(),
            "--substitute",
            "lozola",
        ],
    ):
        subprocess.run([*cc, *command], env=env, check=True, capture_output=True)

    # Every round has calls of its own: a CallSid seen before would take the retry path.
    warmup = work / "warmup.tsv"
    write_calls(warmup, 0, args.calls)
    rounds = []
    for number in range(args.rounds):
        path = work / f"round{number}.tsv"
        write_calls(path, (number + 1) * args.calls, args.calls)
        rounds.append(path)
    script = work / "voice.lua"
    script.write_text(textwrap.dedent(WRK_SCRIPT))

    app_port, bare_port = free_port(), free_port()
    app = gunicorn("callcenter.wsgi:app", env, work, app_port)
    bare = None
    try:
        wait_up(f"http://127.0.0.1:{app_port}/healthz", app)
        # The bare app answers exactly what the real one answers.
        first = warmup.read_text().splitlines()[0].split("\t")
        sample = requests.post(
            f"http://127.0.0.1:{app_port}/twilio/voice",
            data=first[1],
            headers={
                "X-Twilio-Signature": first[0],
                "Content-Type": "application/x-www-form-urlencoded",
            },
            timeout=5,
        )
        assert sample.status_code == 200 and b"<Dial" in sample.content, sample.text
        (work / "twiml.xml").write_bytes(sample.content)
        (work / "bare.py").write_text(BARE_APP.format(path=str(work / "twiml.xml")))
        bare = gunicorn("bare:app", {**env, "PYTHONPATH": str(work)}, work, bare_port)
        wait_up(f"http://127.0.0.1:{bare_port}/", bare)
        for port in (app_port, bare_port):
            run_wrk(port, script, warmup, 2, 1, args.connections)
        # This machine's speed drifts by a fifth from minute to minute (a shared VM): each
        # round runs the app and then the bare app, and the ratio is taken per round.
        results = []
        for path in rounds:
            real = run_wrk(app_port, script, path, 2, args.seconds, args.connections)
            plain = run_wrk(bare_port, script, path, 2, args.seconds, args.connections)
            results.append((real, plain))
    finally:
        for server in (app, bare):
            if server is not None:
                server.terminate()
                server.wait()

    from sqlalchemy import create_engine, text

    from callcenter.settings import load

    engine = create_engine(load(env).database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM calls")).scalar_one()
    engine.dispose()
    print(
        f"load: wrk, {args.connections} connections; {args.rounds} rounds of {args.seconds} s "
        f"per app; gunicorn {WORKERS} workers" + (f" x {THREADS} threads" if THREADS > 1 else "")
    )
    for number, (real, plain) in enumerate(results, 1):
        print(
            f"round {number}: callcenter {real['rps']:6.0f} req/s p50 {real['p50']:6.2f} ms "
            f"p99 {real['p99']:6.2f} ms | bare {plain['rps']:6.0f} req/s p99 "
            f"{plain['p99']:6.2f} ms | ratio {real['rps'] / plain['rps']:.2f}"
            + (
                f" | non-2xx {real['non2xx'] + plain['non2xx']:.0f}"
                if real["non2xx"] + plain["non2xx"]
                else ""
            )
        )
    ratio = statistics.median([real["rps"] / plain["rps"] for real, plain in results])
    p99 = statistics.median([real["p99"] for real, _ in results])
    print(f" bare flask: {statistics.median([p['rps'] for _, p in results]):8.0f} req/s (median)")
    print(
        f" callcenter: {statistics.median([r['rps'] for r, _ in results]):8.0f} req/s (median), "
        f"p50 {statistics.median([r['p50'] for r, _ in results]):.2f} ms, p99 {p99:.2f} ms"
    )
    print(f"throughput ratio callcenter/bare, median of rounds: {ratio:.2f} (goal >= 0.50)")
    print(f"callcenter p99, median of rounds: {p99:.2f} ms (goal < 50 ms)")
    print(f"call rows written: {rows} (one per distinct call answered)")
    errors = sum(real["non2xx"] + plain["non2xx"] for real, plain in results)
    if errors:
        print(f"non-2xx answers: {errors:.0f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
