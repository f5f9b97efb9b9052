"""`callcenter retention ...` commands: the sweep, legal holds, the log, verification."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from callcenter import settings as settings_module
from callcenter.adapters.storage import StorageUnavailable
from callcenter.audit import export, notes
from callcenter.audit.models import RetentionEntry
from callcenter.cli import common
from callcenter.cli.common import CliError, emit, json_option, local_iso, unit_of_work
from callcenter.recordings import due, holds
from callcenter.recordings import verification as verify_module
from retention import sweep as sweep_module


@click.group("retention")
def group() -> None:
    """Delete recorded audio when it is due, hold it for legal reasons, and prove it."""


@group.command("run")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=sweep_module.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Recordings handled per batch.",
)
def run_command(dry_run: bool, batch_size: int) -> None:
    """Delete the audio that is due, everywhere it is kept."""
    rt = common.runtime()
    if not dry_run:
        settings_module.for_jobs(rt.settings)
    now = common.now()
    if dry_run:
        would = held = 0
        with rt.sessions() as session:
            for batch in sweep_module.due_batches(session, now=now, batch_size=batch_size):
                for row in batch:
                    if row.on_hold:
                        held += 1
                        click.echo(
                            f"held          {row.recording_sid}  due {local_iso(row.due_at)}"
                        )
                    else:
                        would += 1
                        click.echo(
                            f"would delete  {row.recording_sid}  due {local_iso(row.due_at)}"
                            f"  ({row.status})"
                        )
        click.echo(f"dry run: {would} would be deleted, {held} held; nothing was changed")
        return
    report = sweep_module.sweep(rt, now=now, batch_size=batch_size)
    if report.refused:
        raise CliError("another retention sweep is running; nothing was done")
    for sid in report.held_sids:
        click.echo(f"held          {sid}")
    for sid, error in report.failures:
        click.echo(f"failed        {sid}  {error}", err=True)
    click.echo(
        f"retention run: {report.deleted} deleted, {report.failed} failed, "
        f"{report.held} held, {report.busy} busy, {report.batches} batches"
    )
    if report.failed:
        raise CliError(
            f"{report.failed} deletions failed (logged as delete_failed); "
            "they are retried at the next run"
        )


@group.command("hold")
@click.argument("recording_sid")
@click.option("--reason", required=True, help="Why the recording must be kept (no names).")
@click.option("--by", help="Who places the hold (default: the OS user).")
def hold_command(recording_sid: str, reason: str, by: str | None) -> None:
    """Place a legal hold: the recording is not deleted until the hold is released."""
    actor = common.who(by)
    try:
        with unit_of_work() as session:
            hold = holds.place(session, recording_sid, reason=reason, actor=actor, now=common.now())
    except holds.HoldError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"hold placed on {recording_sid} by {hold.placed_by}")


@group.command("release")
@click.argument("recording_sid")
@click.option("--reason", required=True, help="Why the hold ends.")
@click.option("--by", help="Who releases the hold (default: the OS user).")
def release_command(recording_sid: str, reason: str, by: str | None) -> None:
    """Release a legal hold; a recording already past due goes at the next sweep."""
    actor = common.who(by)
    now = common.now()
    try:
        with unit_of_work() as session:
            hold = holds.release(session, recording_sid, reason=reason, actor=actor, now=now)
            due = hold.recording.due_at
    except holds.HoldError as exc:
        raise CliError(str(exc)) from None
    when = "at the next sweep" if due <= now else f"on {local_iso(due)}"
    click.echo(f"hold released on {recording_sid}; it will be deleted {when}")


@group.command("holds")
@json_option
def holds_command(as_json: bool) -> None:
    """List the legal holds in force."""
    with common.runtime().sessions() as session:
        rows = [
            {
                "recording_sid": view.recording_sid,
                "call_sid": view.call_sid,
                "status": view.status,
                "due_at": local_iso(view.due_at),
                "placed_at": local_iso(view.placed_at),
                "placed_by": view.placed_by,
                "reason": view.reason,
            }
            for view in holds.active(session)
        ]
    emit(rows, as_json, ["recording_sid", "due_at", "placed_at", "placed_by", "reason"])


@group.command("log")
@click.option("--since", help="Entries at or after this ISO 8601 time (local if no offset).")
@click.option(
    "--format", "fmt", type=click.Choice(export.FORMATS), default="json", show_default=True
)
def log_command(since: str | None, fmt: str) -> None:
    """Print the retention log, oldest entry first."""
    rt = common.runtime()
    start = common.parse_time(since, "--since") if since else None
    with rt.sessions() as session:
        export.write_log(sys.stdout, session, timezone=rt.settings.timezone, since=start, fmt=fmt)


@group.command("verify")
@click.option(
    "--sample",
    type=click.IntRange(1, None),
    help="Check this many kept and deleted recordings in storage, chosen at random.",
)
@click.option(
    "--head",
    "expected_head",
    metavar="SEQ:HASH",
    help="A head printed by an earlier run: the chain must still pass through it.",
)
@click.option("--by", help="Who verifies (a user handle; default: the OS user).")
def verify_command(sample: int | None, expected_head: str | None, by: str | None) -> None:
    """Check the log's hash chain and that storage matches the log; non-zero on any mismatch.

    The result is kept in the verification history (`retention verifications`). A storage
    outage exits 2 and keeps no result: nothing was judged.
    """
    expected: tuple[int, str] | None = None
    if expected_head is not None:
        seq, _, digest = expected_head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise CliError(f"--head: expected SEQ:HASH as printed by verify, got {expected_head!r}")
        expected = (int(seq), digest)
    actor = common.who(by)
    rt = common.runtime()
    try:
        with unit_of_work() as session:
            result = verify_module.run(
                session, rt.storage, now=common.now(), by=actor, sample=sample
            )
            problems = list(result.problems)
            if expected is not None:
                found = session.scalar(
                    select(RetentionEntry.hash).where(RetentionEntry.seq == expected[0])
                )
                if found != expected[1]:
                    problems.append(
                        f"chain: entry {expected[0]}: "
                        + ("missing (entries were cut off)" if found is None else "hash differs")
                    )
    except StorageUnavailable as exc:
        # Not tampering and not a mismatch: nothing could be checked. Exit 2, one line.
        click.echo(f"retention verify: {exc}; nothing was judged", err=True)
        raise SystemExit(2) from None
    except notes.NoteError as exc:
        raise CliError(f"--by: {exc}") from None
    for problem in problems:
        click.echo(problem)
    for redaction in result.redactions:
        click.echo(f"redacted: {redaction}")
    if problems:
        raise CliError(f"retention verify: {len(problems)} mismatch(es) found")
    click.echo(
        f"retention verify: ok: {result.entries} log entries chained; storage matches the log"
        + (f" (a sample of {sample})" if sample else "")
        + (f"; head: entry {result.head.replace(':', ' ', 1)}" if result.head else "")
    )


@group.command("verifications")
@json_option
def verifications_command(as_json: bool) -> None:
    """List the latest verifications (command line, console, the daily job), newest first."""
    with common.runtime().sessions() as session:
        rows = [
            {
                "at": local_iso(run.at),
                "by": run.by,
                "sample": run.sample,
                "ok": run.ok,
                "head": run.head,
                "entries": run.entries,
                "problems": len(run.problems) if not as_json else run.problems,
            }
            for run in verify_module.history(session)
        ]
    emit(rows, as_json, ["at", "by", "ok", "sample", "entries", "head", "problems"])


@group.command("redact")
@click.argument("note_id", type=click.IntRange(1, None))
@click.option("--reason", required=True, help="The lawful request this redaction answers.")
@click.option("--by", help="Who redacts (a user handle; default: the OS user).")
def redact_command(note_id: int, reason: str, by: str | None) -> None:
    """Remove a reason's text kept beside the log (its hash stays; verify reports it)."""
    actor = common.who(by)
    with unit_of_work() as session:
        try:
            notes.redact(session, note_id, by=actor, why=reason, now=common.now())
        except notes.NoteError as exc:
            raise CliError(str(exc)) from None
    click.echo(f"note {note_id} redacted; the log keeps its hash")


@group.command("upcoming")
@click.option(
    "--days", type=click.IntRange(0, 3_650), default=7, show_default=True, help="How far ahead."
)
@json_option
def upcoming_command(days: int, as_json: bool) -> None:
    """List what will be deleted when (overdue and held recordings included)."""
    with common.runtime().sessions() as session:
        rows = [
            {
                "recording_sid": item.recording_sid,
                "call_sid": item.call_sid,
                "due_at": local_iso(item.due_at),
                "status": item.status,
                "on_hold": item.on_hold,
            }
            for item in due.upcoming(session, now=common.now(), days=days)
        ]
    emit(rows, as_json, ["recording_sid", "due_at", "status", "on_hold"])


def register(cli: click.Group) -> None:
    cli.add_command(group)
