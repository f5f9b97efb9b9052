"""`callcenter staff|group|line|absence|hours ...`: the directory from the command line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy.orm import Session

from callcenter.cli.common import (
    CliError,
    emit,
    json_option,
    local_iso,
    now,
    parse_date,
    parse_time,
    unit_of_work,
)
from callcenter.directory import service as directory
from callcenter.directory.models import Absence, Line, Staff


@contextmanager
def _refusals() -> Iterator[Session]:
    """One transaction; a refused change becomes a one-line error and writes nothing."""
    try:
        with unit_of_work() as session:
            yield session
    except directory.DirectoryError as exc:
        raise CliError(str(exc)) from None


@click.group()
def staff() -> None:
    """Staff members whose calls the line routes."""


@staff.command("add")
@click.argument("key")
@click.option("--name", required=True)
@click.option("--phone", required=True, help="E.164, or eight digits for a Latvian number.")
@click.option("--email")
@click.option("--position")
def staff_add(key: str, name: str, phone: str, email: str | None, position: str | None) -> None:
    """Add a staff member."""
    with _refusals() as session:
        person = directory.add_staff(
            session, key, name=name, phone=phone, email=email, position=position
        )
        click.echo(f"added staff {person.key} ({person.phone})")


def _staff_row(person: Staff) -> dict[str, Any]:
    return {
        "key": person.key,
        "name": person.name,
        "phone": person.phone,
        "email": person.email,
        "position": person.position,
        "active": person.active,
    }


@staff.command("list")
@json_option
def staff_list(as_json: bool) -> None:
    """List staff members."""
    with unit_of_work() as session:
        rows = [_staff_row(p) for p in directory.list_staff(session)]
    emit(rows, as_json, ["key", "name", "phone", "position", "active"])


def _activation(active: bool) -> Callable[[str], None]:
    def command(key: str) -> None:
        with _refusals() as session:
            directory.set_staff_active(session, key, active)
        click.echo(f"{key} is now {'active' if active else 'inactive'}")

    return command


staff.command("deactivate", help="Stop routing calls to a staff member.")(
    click.argument("key")(_activation(False))
)
staff.command("activate", help="Route calls to a staff member again.")(
    click.argument("key")(_activation(True))
)


@click.group()
def group() -> None:
    """Ring groups."""


@group.command("add")
@click.argument("key")
@click.option("--name", required=True)
@click.option("--members", required=True, help="Comma-separated staff keys, in ring order.")
@click.option(
    "--strategy", type=click.Choice(directory.STRATEGIES), default="sequential", show_default=True
)
def group_add(key: str, name: str, members: str, strategy: str) -> None:
    """Add a ring group."""
    keys = [m.strip() for m in members.split(",") if m.strip()]
    with _refusals() as session:
        directory.add_group(session, key, name=name, members=keys, strategy=strategy)
    click.echo(f"added group {key} ({strategy}: {', '.join(keys)})")


@group.command("list")
@json_option
def group_list(as_json: bool) -> None:
    """List ring groups."""
    with unit_of_work() as session:
        rows = [
            {
                "key": g.key,
                "name": g.name,
                "strategy": g.strategy,
                "members": [m.staff.key for m in g.members],
            }
            for g in directory.list_groups(session)
        ]
    emit(rows, as_json, ["key", "name", "strategy", "members"])


@click.group()
def line() -> None:
    """Twilio numbers and where their calls go."""


_YES_NO = click.Choice(["yes", "no"])
_HOURS_HELP = "'always', or like 'mon-thu 08:00-17:00, fri 08:00-15:30'."
_RECORD_HELP = "Record calls (and play the recording notice); default yes."
_SURVEY_HELP = "Ask callers to rate an answered conversation, 1-5; default no."


def _switch(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


@line.command("add")
@click.argument("number")
@click.option("--target", required=True, help="staff:KEY or group:KEY")
@click.option("--hours", help=_HOURS_HELP)
@click.option("--overflow", help="A group KEY rung when the target and substitutes cannot answer.")
@click.option("--record", type=_YES_NO, default="yes", show_default=True, help=_RECORD_HELP)
@click.option("--survey", type=_YES_NO, default="no", show_default=True, help=_SURVEY_HELP)
def line_add(
    number: str, target: str, hours: str | None, overflow: str | None, record: str, survey: str
) -> None:
    """Route a Twilio number."""
    with _refusals() as session:
        added = directory.add_line(
            session,
            number,
            target=target,
            hours=hours,
            overflow=overflow,
            record=record == "yes",
            survey=survey == "yes",
        )
        click.echo(
            f"added line {added.number} -> {target} ({added.hours}; "
            f"record {record}, survey {survey})"
        )


@line.command("set")
@click.argument("number")
@click.option("--target", help="staff:KEY or group:KEY")
@click.option("--hours", help=_HOURS_HELP)
@click.option("--record", type=_YES_NO, help=_RECORD_HELP)
@click.option("--survey", type=_YES_NO, help=_SURVEY_HELP)
def line_set(
    number: str, target: str | None, hours: str | None, record: str | None, survey: str | None
) -> None:
    """Change a line's target, hours, recording or survey; the next call follows it."""
    if target is None and hours is None and record is None and survey is None:
        raise CliError("give at least one of --target, --hours, --record, --survey")
    with _refusals() as session:
        changed = directory.set_line(
            session,
            number,
            target=target,
            hours=hours,
            record=_switch(record),
            survey=_switch(survey),
        )
        e164 = directory.get_line(session, number).number
    if not changed:
        click.echo(f"line {e164}: nothing to change")
    for change in changed:
        click.echo(f"line {e164}: {change}")


def _line_row(session: Session, item: Line) -> dict[str, Any]:
    return {
        "number": item.number,
        "target": directory.describe_target(session, item),
        "hours": item.hours,
        "record": item.record,
        "survey": item.survey,
    }


@line.command("list")
@json_option
def line_list(as_json: bool) -> None:
    """List lines."""
    with unit_of_work() as session:
        rows = [_line_row(session, item) for item in directory.list_lines(session)]
    emit(rows, as_json, ["number", "target", "hours", "record", "survey"])


@click.group()
def absence() -> None:
    """Absences and substitutes."""


@absence.command("add")
@click.argument("key")
@click.option("--start", required=True, help="ISO 8601; without an offset it is local time.")
@click.option("--end", required=True, help="ISO 8601; without an offset it is local time.")
@click.option("--substitute", required=True, help="The staff KEY who answers meanwhile.")
@click.option("--note")
@click.option(
    "--allow-cycle",
    is_flag=True,
    help="Record it even though it closes a cycle of substitutes (their calls reach neither).",
)
def absence_add(
    key: str, start: str, end: str, substitute: str, note: str | None, allow_cycle: bool
) -> None:
    """Record an absence."""
    starts_at, ends_at = parse_time(start, "--start"), parse_time(end, "--end")
    with _refusals() as session:
        cycle = directory.closes_cycle(
            session, key, substitute_key=substitute, starts_at=starts_at, ends_at=ends_at
        )
        try:
            added = directory.add_absence(
                session,
                key,
                starts_at=starts_at,
                ends_at=ends_at,
                substitute_key=substitute,
                note=note,
                allow_cycle=allow_cycle,
            )
        except directory.DirectoryError as exc:
            if exc.code == "cycle":
                raise directory.DirectoryError(f"{exc}, or give --allow-cycle", exc.code) from None
            raise
        click.echo(f"absence {added.id}: {key} away, {substitute} substitutes")
    if cycle:
        click.echo(
            f"warning: a cycle of substitutes ({' -> '.join(cycle)}): while it lasts their "
            "callers hear that they are away and are put through to the overflow group, or "
            "hear that nobody can answer and are offered a callback",
            err=True,
        )


def _absence_row(item: Absence) -> dict[str, Any]:
    return {
        "id": item.id,
        "staff": item.staff.key,
        "substitute": item.substitute.key,
        "start": local_iso(item.starts_at),
        "end": local_iso(item.ends_at),
        "note": item.note,
        "cancelled": item.cancelled_at is not None,
    }


@absence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include past and cancelled absences.")
@json_option
def absence_list(show_all: bool, as_json: bool) -> None:
    """List current and future absences."""
    with unit_of_work() as session:
        items = directory.list_absences(
            session, current_after=None if show_all else now(), include_cancelled=show_all
        )
        rows = [_absence_row(item) for item in items]
    emit(rows, as_json, ["id", "staff", "substitute", "start", "end", "note", "cancelled"])


@absence.command("cancel")
@click.argument("absence_id", type=int)
def absence_cancel(absence_id: int) -> None:
    """Cancel an absence."""
    with _refusals() as session:
        directory.cancel_absence(session, absence_id, now=now())
    click.echo(f"absence {absence_id} cancelled")


@click.group()
def hours() -> None:
    """One-off changes of the working hours (announced to callers)."""


@hours.command("set")
@click.argument("day")
@click.option("--hours", "interval", help="Other hours that day, like 09:00-13:00.")
@click.option("--closed", is_flag=True, help="Closed all day.")
@click.option("--message", help="What callers hear about the change.")
def hours_set(day: str, interval: str | None, closed: bool, message: str | None) -> None:
    """Change the hours of one date."""
    if closed == (interval is not None):
        raise CliError("give exactly one of --hours HH:MM-HH:MM or --closed")
    date_value = parse_date(day, "DAY")
    with _refusals() as session:
        directory.set_hours_change(session, date_value, hours=interval, message=message)
    click.echo(f"{date_value.isoformat()}: {'closed' if closed else interval}")


@hours.command("list")
@json_option
def hours_list(as_json: bool) -> None:
    """List one-off hours changes from today on."""
    with unit_of_work() as session:
        rows = [
            {"day": c.day.isoformat(), "hours": c.hours or "closed", "message": c.message}
            for c in directory.list_hours_changes(session, since=now().date())
        ]
    emit(rows, as_json, ["day", "hours", "message"])


@hours.command("remove")
@click.argument("day")
def hours_remove(day: str) -> None:
    """Remove the change of one date."""
    date_value = parse_date(day, "DAY")
    with _refusals() as session:
        directory.remove_hours_change(session, date_value)
    click.echo(f"{date_value.isoformat()}: regular hours")


def register(cli: click.Group) -> None:
    for command in (staff, group, line, absence, hours):
        cli.add_command(command)
