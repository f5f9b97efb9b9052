"""`callcenter retention ...` commands."""

from __future__ import annotations

import click


@click.group("retention")
def group() -> None:
    """Not built yet."""


def register(cli: click.Group) -> None:
    cli.add_command(group)
