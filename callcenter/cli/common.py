"""Shared pieces of the command line: the root group, the runtime, output and parsing."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import click
from sqlalchemy.orm import Session

from callcenter import localtime
from callcenter import settings as settings_module
from callcenter.db import transaction
from callcenter.runtime import Runtime


class CliError(Exception):
    """A command refused its input; the message is the one line the user sees."""


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Twilio call routing and call-recording retention for a customer line."""
    ctx.ensure_object(dict)


def runtime() -> Runtime:
    """Return this invocation's runtime, building settings from the environment once."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    root.ensure_object(dict)
    if "runtime" not in root.obj:
        root.obj["runtime"] = Runtime(settings_module.load())
        root.call_on_close(root.obj["runtime"].close)
    return root.obj["runtime"]


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction for one command: all of it is written, or none."""
    with transaction(runtime().sessions) as session:
        yield session


def now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str, option: str) -> datetime:
    """Parse ISO 8601; a time without an offset is the line's local time."""
    try:
        return localtime.parse_local(value, runtime().settings.timezone)
    except localtime.LocalTimeError as exc:
        raise CliError(f"{option}: {exc}") from None


def parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: not a date like 2026-12-24: {value!r}") from None


def local_iso(at: datetime | None) -> str | None:
    """Render a time as ISO 8601 in the line's zone, with its offset."""
    return localtime.local_iso(at, runtime().settings.timezone)


def emit(rows: Sequence[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    """Print rows as one JSON array, or as an aligned table."""
    if as_json:
        click.echo(json.dumps(list(rows), ensure_ascii=False, indent=None, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    table = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(r[i]) for r in table)) for i, column in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")


def who(by: str | None) -> str:
    """Who runs a command that is logged: `--by`, else the OS user (a handle, not a name)."""
    if by is not None:
        return by
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:
        raise CliError("--by: cannot tell who you are; pass --by WHO") from None
