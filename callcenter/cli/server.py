"""`callcenter db|web|serve|scheduler|simulate-call`: processes and development tools."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import click
import requests
from werkzeug.serving import make_server

from callcenter import health, migrate, phones, sample
from callcenter import settings as settings_module
from callcenter.app import create_app
from callcenter.cli.common import CliError, now, runtime
from callcenter.db import ensure_sqlite_directory
from callcenter.runtime import Runtime
from callcenter.simulate import Simulation, SimulationError
from retention.scheduler import run_scheduler


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (Alembic)."""
    ensure_sqlite_directory(runtime().settings.database_url)
    migrate.upgrade(runtime().engine)
    click.echo("database schema is up to date")


@db.command("current")
def db_current() -> None:
    """Print the database's schema revision, and whether it is the newest."""
    current, head = migrate.revisions(runtime().engine)
    state = "(head)" if current == head else f"(the code's newest: {', '.join(sorted(head))})"
    click.echo(f"{', '.join(sorted(current)) or 'none'} {state}")


@db.command("check")
def db_check() -> None:
    """Exit 0 if the schema is at the newest revision; else say so on one line and exit 1."""
    problem = health.schema_problem(runtime().engine)
    if problem is not None:
        raise CliError(problem)
    click.echo("database schema is at the newest revision")


# The Procfile's `web` process, exactly: `callcenter web` runs this same command.
WEB_COMMAND = ("gunicorn", "-c", "python:callcenter.gunicorn_config", "callcenter.wsgi:app")


@click.command("web")
@click.option("--bind", help="Address to listen on (default: 0.0.0.0:$PORT, else :8000).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes (default: $WEB_CONCURRENCY, else 2).",
)
def web(bind: str | None, workers: int | None) -> None:
    """Serve the web app with gunicorn: the Procfile's web process, the same command."""
    settings_module.for_web(runtime().settings)
    argv = [sys.executable, "-m", *WEB_COMMAND]
    if bind:
        argv += ["--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, a fixed command


@click.command("scheduler")
def scheduler() -> None:
    """Run the timed jobs: ingestion, reconciliation, retention (the one scheduler process)."""
    rt = runtime()
    settings_module.for_jobs(rt.settings)
    try:
        health.check_at_start(rt)
    except health.NotReady as exc:
        raise CliError(str(exc)) from None
    run_scheduler(rt)


def _development_runtime(port: int) -> Runtime:
    env = settings_module.development_env(os.environ, port)
    filled = sorted(k for k in env if k not in os.environ or not os.environ[k].strip())
    if filled:
        click.echo(f"development defaults for: {', '.join(filled)}", err=True)
    return Runtime(settings_module.load(env, development=True))


@click.command("serve")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=settings_module.DEVELOPMENT_PORT,
    show_default=True,
)
@click.option(
    "--demo/--no-demo",
    default=True,
    show_default=True,
    help="Load the sample directory into an empty database and place sample calls.",
)
@click.option("--scheduler/--no-scheduler", "with_scheduler", default=True, show_default=True)
@click.option(
    "--force",
    is_flag=True,
    help="Serve even with a non-local PUBLIC_BASE_URL or a database holding real data.",
)
def serve(port: int, demo: bool, with_scheduler: bool, force: bool) -> None:
    """Run web and scheduler together on embedded defaults, for development.

    Rules: it accepts webhooks signed with a published development token and writes sample
    staff and calls, so it refuses, unless --force, a PUBLIC_BASE_URL that is not loopback and
    a database whose directory holds anyone or any line the sample did not put there.
    """
    # The conversation is the point of the demo; per-request and migration lines drown it.
    for name in ("werkzeug", "alembic", "webhooks"):
        logging.getLogger(name).setLevel(logging.WARNING)
    rt = _development_runtime(port)
    public = rt.settings.public_base_url or ""
    if not force and not settings_module.is_loopback(public):
        raise CliError(
            f"serve is for development: PUBLIC_BASE_URL {settings_module.redacted(public)} is "
            "not loopback (use the Procfile's processes, or --force)"
        )
    ensure_sqlite_directory(rt.settings.database_url)
    # Checked before the schema is touched: a database with no schema yet holds nothing.
    if not force and migrate.revisions(rt.engine)[0]:
        with rt.sessions() as session:
            if sample.holds_other_data(session):
                raise CliError(
                    "serve is for development: the database (DATABASE_URL) holds staff or lines "
                    "other than the sample's (use the Procfile's processes, or --force)"
                )
    migrate.upgrade(rt.engine)
    if demo:
        with rt.sessions.begin() as session:
            if sample.load(session, now(), rt.settings.timezone):
                click.echo("loaded the sample directory (callcenter staff list, line list)")
    with rt.sessions.begin() as session:
        users = sample.load_users(session, now())
    if users:
        click.echo(
            f"development console users: {', '.join(users)}, each with the password "
            f"{sample.DEVELOPMENT_PASSWORD!r} (callcenter users list)",
            err=True,
        )
    env = settings_module.development_env(os.environ, port)
    if not (os.environ.get("PUBLIC_BASE_URL") or "").strip():
        # The scheduler needs no public address, and the development one is plain http,
        # which a production process refuses.
        env.pop("PUBLIC_BASE_URL", None)
    children: list[subprocess.Popen[bytes]] = []
    if with_scheduler:
        children.append(
            subprocess.Popen([sys.executable, "-m", "callcenter", "scheduler"], env=env)
        )
    server = make_server("127.0.0.1", port, create_app(runtime=rt), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    click.echo(f"serving on {base} (Ctrl-C stops); the console: {base}/console/")
    if demo:
        _demo_calls(rt, base)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (a process manager, a test) stops it like Ctrl-C: the scheduler child goes too.
    signal.signal(signal.SIGTERM, stop)
    try:
        while thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        for child in children:
            child.terminate()
            child.wait(timeout=10)


def _demo_calls(rt: Runtime, base: str) -> None:
    for title, to, outcomes, presses in (
        (
            # The caller hears that Jānis is away, until when, and that Līga takes the call;
            # after the conversation they rate it.
            "A call to the direct line while Jānis is away: forwarding announced, then a survey",
            sample.SAMPLE_LINE_DIRECT,
            [],
            ["4"],
        ),
        (
            "A call to the information line, which does not record: no notice",
            sample.SAMPLE_LINE_UNRECORDED,
            [],
            [],
        ),
        (
            # The department keeps the company's hours: after them the caller hears the hours
            # instead of the ringing, and is offered the callback all the same.
            "A call to the department nobody answers (after hours: the hours); the caller "
            "asks to be called back",
            sample.SAMPLE_LINE_DEPARTMENT,
            ["no-answer", "no-answer"],
            ["1"],
        ),
    ):
        click.echo(f"\n== {title}")
        simulation = Simulation(
            rt.settings,
            base,
            sample.SAMPLE_CALLER,
            to,
            dial_outcomes=list(outcomes),
            presses=list(presses),
        )
        try:
            for line in simulation.run():
                click.echo("  " + line)
        except (SimulationError, requests.RequestException) as exc:
            click.echo(f"  simulation failed: {exc}", err=True)
    click.echo(
        "\nmore: callcenter simulate-call --to +37167000001 "
        "--outcome no-answer --outcome no-answer --press 1"
    )


@click.command("simulate-call")
@click.option("--to", "to_number", default=sample.SAMPLE_LINE_DIRECT, show_default=True)
@click.option("--from", "from_number", default=sample.SAMPLE_CALLER, show_default=True)
@click.option("--url", "base_url", help="Where the service listens (default: the dev server).")
@click.option(
    "--outcome",
    "outcomes",
    multiple=True,
    type=click.Choice(["answered", "no-answer", "busy", "failed"]),
    help="How each dial ends, in order (default: answered).",
)
@click.option("--press", "presses", multiple=True, help="Keys pressed at each menu, in order.")
@click.option(
    "--record",
    is_flag=True,
    help="Also send the recording-status callback of an answered recorded dial (ingestion "
    "then fetches its media from TWILIO_API_BASE_URL).",
)
@click.option(
    "--caller-hangs-up",
    is_flag=True,
    help="The caller ends the conversation (default: the staff side does, and the caller "
    "stays for a survey where the line has one).",
)
def simulate_call(
    to_number: str,
    from_number: str,
    base_url: str | None,
    outcomes: tuple[str, ...],
    presses: tuple[str, ...],
    record: bool,
    caller_hangs_up: bool,
) -> None:
    """Place a simulated call through the webhooks, signed as Twilio would; print it.

    Plays all of Twilio's part: the voice webhook and what its TwiML asks for, each leg's
    status callbacks, the call's own at its end, and with --record the recording callback.
    """
    try:
        to_number = phones.normalize(to_number)
    except phones.InvalidPhone as exc:
        raise CliError(f"--to: {exc}") from None
    if from_number.strip().lower() not in phones.WITHHELD:
        # A withheld caller, as Twilio presents one ("anonymous" and the like), is a case
        # worth simulating as it is; anything else must be a number.
        try:
            from_number = phones.normalize(from_number)
        except phones.InvalidPhone as exc:
            raise CliError(f"--from: {exc}") from None
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(
                f"--url: not an http(s) address (like http://127.0.0.1:8000): {base_url}"
            )
    env = dict(os.environ)
    development = not (env.get("PUBLIC_BASE_URL") or "").strip()
    if development:
        # Signing as the development server does: its public address is where it listens.
        env = settings_module.development_env(env)
        if base_url:
            env["PUBLIC_BASE_URL"] = base_url.rstrip("/")
    settings = settings_module.load(env, development=development)
    target = base_url or settings.require("PUBLIC_BASE_URL")
    simulation = Simulation(
        settings,
        target,
        from_number,
        to_number,
        dial_outcomes=list(outcomes),
        presses=list(presses),
        record=record,
        caller_hangs_up=caller_hangs_up,
    )
    try:
        lines = simulation.run()
    except requests.RequestException as exc:
        raise CliError(f"cannot reach the service at {target}: {type(exc).__name__}") from None
    except SimulationError as exc:
        raise CliError(f"the service misbehaved: {exc}") from None
    for line in lines:
        click.echo(line)
    click.echo(f"CallSid: {simulation.call_sid}")


def register(cli: click.Group) -> None:
    for command in (db, web, scheduler, serve, simulate_call):
        cli.add_command(command)
