"""The `parley` command: one Typer app, one module per area."""

from __future__ import annotations

from core.telemetry import quiet_libraries

quiet_libraries()

import typer

from bot.cli import apikey, core_commands, guard, history, memory, profile, serve
from bot.cli import discord as discord_cli
from bot.cli import eval as eval_cli
from bot.cli import slack as slack_cli
from bot.cli.doctor import doctor

app = typer.Typer(
    name="parley",
    help="Parley: a self-hosted AI assistant for Slack and Discord teams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
core_commands.register(app)
app.add_typer(memory.app, name="memory")
app.add_typer(profile.app, name="profile")
app.add_typer(history.app, name="history")
app.add_typer(discord_cli.app, name="discord")
app.add_typer(eval_cli.app, name="eval")
app.add_typer(slack_cli.app, name="slack")
app.add_typer(serve.app, name="serve")
app.add_typer(apikey.app, name="apikey")
app.add_typer(guard.app, name="guard")

app.command("doctor")(doctor)


def main() -> None:
    from bot.cli.common import run_cli

    run_cli(app)
