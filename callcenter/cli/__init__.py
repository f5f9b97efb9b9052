"""The `callcenter` command: the command line's composition root.

Every command exits 0 on success. Bad input exits non-zero with one line on stderr saying what
is wrong, and nothing is half-written (each command's writes are one transaction).
"""

from __future__ import annotations

import logging
import os
import sys

import click
from sqlalchemy.exc import DBAPIError

from callcenter import logs
from callcenter.cli import calls, directory, recordings, retention, server, twilio, users
from callcenter.cli.common import CliError, cli
from callcenter.settings import SettingsError

for module in (directory, calls, recordings, retention, server, twilio, users):
    module.register(cli)

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the command line; turn every expected failure into one line on stderr."""
    # Before the settings are read (a bad LOG_FORMAT is named when they are).
    log_format = (os.environ.get("LOG_FORMAT") or "").strip().lower()
    logs.configure("json" if log_format == "json" else "text")
    try:
        cli.main(args=argv, prog_name="callcenter", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("callcenter: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        where = f" ({exc.ctx.command_path})" if exc.ctx else ""
        click.echo(f"callcenter: usage{where}: {exc.format_message()}", err=True)
        sys.exit(2)
    except (CliError, SettingsError) as exc:
        click.echo(f"callcenter: {exc}", err=True)
        sys.exit(2 if isinstance(exc, SettingsError) else 1)
    except click.ClickException as exc:
        click.echo(f"callcenter: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except DBAPIError as exc:
        logging.getLogger("callcenter").debug("database error", exc_info=True)
        click.echo(f"callcenter: {_database_problem(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:
        logging.getLogger("callcenter").debug("unexpected error", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"callcenter: unexpected error: {type(exc).__name__}: {first}", err=True)
        sys.exit(1)


def _database_problem(exc: DBAPIError) -> str:
    """Say in one line what is wrong with the database."""
    text = str(exc.orig).strip()
    lowered = text.lower()
    if "no such table" in lowered or ("does not exist" in lowered and "relation" in lowered):
        return "the database has no schema yet: run `callcenter db upgrade`"
    if exc.connection_invalidated or "unable to open" in lowered or "connect" in lowered:
        return f"cannot open the database (DATABASE_URL): {text.splitlines()[0] if text else ''}"
    return f"database error: {type(exc.orig).__name__}: {text.splitlines()[0] if text else ''}"
