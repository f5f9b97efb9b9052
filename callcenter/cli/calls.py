"""`callcenter calls|callbacks ...`: the call log and callback requests."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import click
from sqlalchemy import select

from callcenter.calls import callbacks as callbacks_module
from callcenter.calls import listing
from callcenter.calls import report as report_module
from callcenter.calls.models import Call
from callcenter.cli.common import (
    CliError,
    emit,
    json_option,
    now,
    parse_date,
    parse_time,
    runtime,
    unit_of_work,
)
from callcenter.directory.models import Staff


@click.group()
def calls() -> None:
    """The call log."""


@calls.command("list")
@click.option("--since", help="ISO 8601; without an offset it is local time.")
@json_option
def calls_list(since: str | None, as_json: bool) -> None:
    """List calls with their outcomes, oldest first."""
    query = (
        select(Call, Staff.key)
        .outerjoin(Staff, Staff.id == Call.answered_by_id)
        .order_by(Call.started_at, Call.id)
    )
    if since:
        query = query.where(Call.started_at >= parse_time(since, "--since"))
    with unit_of_work() as session:
        zone = runtime().settings.timezone
        rows = [listing.call_row(call, key, zone) for call, key in session.execute(query)]
    emit(
        rows,
        as_json,
        ["call_sid", "from", "started_at", "outcome", "answered_by", "as_substitute", "intended"],
    )


@click.group()
def callbacks() -> None:
    """Callback requests from missed or after-hours calls."""


@callbacks.command("list")
@click.option("--overdue", is_flag=True, help="Only open requests past their due time.")
@click.option("--all", "show_all", is_flag=True, help="Include done requests.")
@json_option
def callbacks_list(overdue: bool, show_all: bool, as_json: bool) -> None:
    """List callback requests, soonest due first."""
    with unit_of_work() as session:
        items = callbacks_module.list_callbacks(
            session,
            status=None if show_all or overdue else "open",
            overdue_at=now() if overdue else None,
        )
        rows = [listing.callback_row(item, runtime().settings.timezone) for item in items]
    emit(rows, as_json, ["id", "phone", "reason", "due_at", "status"])


@callbacks.command("done")
@click.argument("request_id", type=int)
@click.option("--note")
def callbacks_done(request_id: int, note: str | None) -> None:
    """Close a callback request."""
    try:
        with unit_of_work() as session:
            callbacks_module.mark_done(session, request_id, now=now(), note=note)
    except callbacks_module.CallbackError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"callback request {request_id} done")


@click.command("report")
@click.option("--from", "start", required=True, help="First local date, like 2026-11-23.")
@click.option("--to", "end", required=True, help="Last local date, included.")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "csv", "json"]),
    default="text",
    show_default=True,
)
def report(start: str, end: str, output: str) -> None:
    """Report calls per staff member and day, and per line and day."""
    first = parse_date(start, "--from")
    last = parse_date(end, "--to")
    if last < first:
        raise CliError(f"--to {last} is before --from {first}")
    if (last - first).days > MAX_REPORT_DAYS:
        raise CliError(f"a report covers at most {MAX_REPORT_DAYS} days")
    with unit_of_work() as session:
        result = report_module.build(
            session, start=first, end=last, zone=runtime().settings.timezone, now=now()
        )
    data = result.to_json()
    if output == "json":
        click.echo(json.dumps(data, ensure_ascii=False))
    elif output == "csv":
        click.echo(_report_csv(data), nl=False)
    else:
        click.echo(f"Calls {data['from']} to {data['to']} ({data['timezone']})")
        click.echo("")
        click.echo("Staff")
        emit(data["staff"], False, report_module.STAFF_COLUMNS)
        click.echo("")
        click.echo("Lines")
        emit(data["lines"], False, report_module.LINE_COLUMNS)


# A year and a bit: a longer report is a typo more often than a wish.
MAX_REPORT_DAYS = 400


def _report_csv(data: dict[str, Any]) -> str:
    """One table for spreadsheets: a `section` column says staff or line; other cells blank."""
    columns = [
        "section",
        *dict.fromkeys([*report_module.STAFF_COLUMNS, *report_module.LINE_COLUMNS]),
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for section, rows in (("staff", data["staff"]), ("line", data["lines"])):
        for row in rows:
            writer.writerow({"section": section, **{k: row.get(k) for k in columns[1:]}})
    return buffer.getvalue()


def register(cli: click.Group) -> None:
    cli.add_command(calls)
    cli.add_command(callbacks)
    cli.add_command(report)
