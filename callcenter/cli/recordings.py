"""`callcenter recordings ...` commands: ingest, reconcile, list, access."""

from __future__ import annotations

import shutil
from contextlib import closing
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from callcenter import settings as settings_module
from callcenter.cli.common import (
    CliError,
    emit,
    json_option,
    local_iso,
    now,
    parse_date,
    runtime,
    unit_of_work,
    who,
)
from callcenter.recordings import access as access_module
from callcenter.recordings import ingest as ingestion
from callcenter.recordings import reconcile as reconciliation
from callcenter.recordings.models import Recording
from callcenter.recordings.states import AccessPurpose, RecordingStatus

STATUSES = tuple(RecordingStatus)


@click.group("recordings")
def group() -> None:
    """Move recordings from Twilio into our storage and check them."""


@group.command("ingest")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many recordings.")
def ingest(limit: int | None) -> None:
    """Move pending recordings from Twilio to storage once."""
    rt = runtime()
    settings_module.for_jobs(rt.settings)
    report = ingestion.ingest_pending(rt.sessions, rt.storage, rt.twilio, now=now(), limit=limit)
    for sid, error in sorted(report.failed.items()):
        click.echo(f"{sid}: will retry: {error}", err=True)
    click.echo(
        f"stored {len(report.stored)}, Twilio copies deleted "
        f"{len(report.provider_copies_deleted)}, failed {len(report.failed)} (retried later)"
    )
    if report.failed:
        # As `retention run` does: a run in which something failed says so in its exit code,
        # so cron or an operator's script notices; the failures are retried all the same.
        raise CliError(f"{len(report.failed)} recording(s) failed; they are retried later")


@group.command("reconcile")
@click.option("--since", help="Only Twilio recordings created after this date (YYYY-MM-DD).")
@click.option(
    "--no-ingest", is_flag=True, help="Only queue what callbacks missed; do not download it now."
)
def reconcile(since: str | None, no_ingest: bool) -> None:
    """Compare Twilio's recording list with the database and storage; ingest what was missed."""
    rt = runtime()
    settings_module.for_jobs(rt.settings)
    since_day = parse_date(since, "--since") if since else None
    report = reconciliation.reconcile(rt, now(), since=since_day)
    click.echo(
        f"Twilio lists {report.listed}; callbacks missed {len(report.created)}; "
        f"Twilio copies deleted {len(report.provider_copies_deleted)}"
    )
    for sid, reason in sorted(report.skipped.items()):
        click.echo(f"{sid}: skipped: {reason}", err=True)
    for sid, error in sorted(report.failed.items()):
        click.echo(f"{sid}: will retry: {error}", err=True)
    if report.created and not no_ingest:
        ingested = ingestion.ingest(rt, now())
        click.echo(
            f"ingested {len(ingested.stored)}, failed {len(ingested.failed)} (retried later)"
        )
        failed = len(report.failed) + len(ingested.failed)
    else:
        failed = len(report.failed)
    for missing in report.missing:
        click.echo(f"missing from storage: {missing.recording_sid} {missing.storage_key or '-'}")
    if report.missing:
        raise CliError(f"{len(report.missing)} stored recording(s) are missing from storage")
    if failed:
        raise CliError(f"{failed} recording(s) failed; they are retried later")


@group.command("list")
@json_option
@click.option("--status", type=click.Choice(STATUSES), help="Only recordings in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def list_(as_json: bool, status: str | None, limit: int) -> None:
    """List recordings, newest first."""
    rt = runtime()
    query = select(Recording).order_by(Recording.started_at.desc(), Recording.id.desc())
    if status:
        query = query.where(Recording.status == status)
    with rt.sessions() as session:
        rows = session.scalars(query.limit(limit)).all()
    items: list[dict[str, Any]] = [
        {
            "recording_sid": r.recording_sid,
            "call_sid": r.call_sid,
            "status": r.status,
            "started_at": local_iso(r.started_at),
            "due_at": local_iso(r.due_at),
            "duration_seconds": r.duration_seconds,
            "channels": r.channels,
            "size_bytes": r.size_bytes,
            "sha256": r.sha256,
            "storage_key": r.storage_key,
            "attempts": r.attempts,
            "next_attempt_at": local_iso(r.next_attempt_at),
            "last_error": r.last_error,
            "provider_deleted": r.provider_deleted_at is not None,
            "on_hold": r.on_hold,
        }
        for r in rows
    ]
    emit(
        items,
        as_json,
        ["recording_sid", "status", "started_at", "duration_seconds", "size_bytes", "attempts",
         "provider_deleted", "last_error"],
    )  # fmt: skip


def register(cli: click.Group) -> None:
    cli.add_command(group)


@group.command("access")
@click.argument("recording_sid")
@click.option("--reason", required=True, help="Why you need the audio (kept on the record).")
@click.option(
    "--purpose",
    type=click.Choice([str(p) for p in AccessPurpose]),
    default=str(AccessPurpose.LISTEN),
    show_default=True,
)
@click.option("--by", help="Who asks (a user handle; default: the OS user).")
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the audio (WAV).",
)
def access(recording_sid: str, reason: str, purpose: str, by: str | None, output: Path) -> None:
    """Write a recording's audio to a file, logging who asked and why before any byte is read."""
    actor = who(by)
    rt = runtime()
    with unit_of_work() as session:
        try:
            granted = access_module.grant(
                session, recording_sid, actor=actor, reason=reason, purpose=purpose, now=now()
            )
        except access_module.AccessRefused as exc:
            raise CliError(str(exc)) from None
    # Committed: the access is on the record before the audio leaves storage.
    partial = output.with_name(f".{output.name}.part")
    try:
        with closing(rt.storage.open(granted.key)) as source, partial.open("wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)
        partial.replace(output)
    except KeyError:
        partial.unlink(missing_ok=True)
        raise CliError(f"recording {recording_sid}: its object is missing from storage") from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(f"--output: {exc.strerror or exc}") from None
    held = " (on legal hold)" if granted.on_hold else ""
    click.echo(
        f"{recording_sid}{held}: written to {output}; access logged as entry {granted.entry_seq}"
    )
