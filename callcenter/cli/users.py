"""`callcenter users add|list|deactivate|token`: accounts of the console and the API."""

from __future__ import annotations

import sys

import click

from callcenter.accounts import service as accounts
from callcenter.accounts.models import ROLES
from callcenter.cli.common import CliError, emit, json_option, local_iso, now, unit_of_work


@click.group()
def users() -> None:
    """Users of the console and the JSON API."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line; the line break that ends it is not part of the password.
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password on: use --password-stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--staff", "staff_key", help="The staff KEY this user is (required for staff).")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
def users_add(username: str, role: str, staff_key: str | None, password_stdin: bool) -> None:
    """Add a user; the password is asked for on the terminal."""
    password = _read_password(password_stdin)
    try:
        with unit_of_work() as session:
            user = accounts.add_user(
                session, username, role=role, password=password, staff_key=staff_key, now=now()
            )
            click.echo(f"added user {user.username} ({user.role})")
    except accounts.AccountError as exc:
        raise CliError(str(exc)) from None


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """List users."""
    with unit_of_work() as session:
        rows = [
            {
                "username": user.username,
                "role": user.role,
                "staff": user.staff.key if user.staff else None,
                "active": user.active,
                "created_at": local_iso(user.created_at),
            }
            for user in accounts.list_users(session)
        ]
    emit(rows, as_json, ["username", "role", "staff", "active", "created_at"])


@users.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """Stop a user signing in; their API tokens are revoked."""
    try:
        with unit_of_work() as session:
            accounts.deactivate_user(session, username, now=now())
    except accounts.AccountError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"{username} is now inactive")


@users.command("token")
@click.argument("username")
def users_token(username: str) -> None:
    """Issue an API token; it is printed once, as the last word of the last line."""
    try:
        with unit_of_work() as session:
            _row, token = accounts.create_token(session, username, now=now())
    except accounts.AccountError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"API token for {username} (shown only this once; send it as")
    click.echo(f"'Authorization: Bearer TOKEN'): {token}")


def register(cli: click.Group) -> None:
    cli.add_command(users)
