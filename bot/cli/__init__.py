"""The `parley` command: one Typer app, one module per area."""

from __future__ import annotations

import typer

from bot.cli import core_commands

app = typer.Typer(
    name="parley",
    help="Parley: a self-hosted AI assistant for Slack and Discord teams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
core_commands.register(app)


def main() -> None:
    app()
