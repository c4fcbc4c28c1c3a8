"""The `parley` command: one Typer app, one module per area, each imported only when its command runs.

Every command starts as a process of its own (a CLI call, a Fly.io machine waking from zero), so the
root imports nothing but Typer: `parley --help` lists the commands from `COMMANDS`, and running one
imports that command's module alone (`config show` never pays for NeMo, Slack or the models).
To add a command, give it a line in `COMMANDS`: its name, where it lives (a function or a
`typer.Typer` of sub-commands) and the help line `parley --help` shows (a test checks it matches).
"""

from __future__ import annotations

from core.telemetry import quiet_libraries, startup_phase

quiet_libraries()

import gc
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from typer._click.exceptions import NoSuchOption
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter


@dataclass(frozen=True, kw_only=True, slots=True)
class Lazy:
    """A command whose module is imported when it runs, not when the CLI starts."""

    target: str
    """`module:attribute`, the attribute a command function or a `typer.Typer` of sub-commands."""
    help: str
    """The line `parley --help` shows: the command's own first help line."""

    def load(self, name: str) -> Command:
        """Import the module and build the command as Typer would have at start."""
        module, attribute = self.target.split(":")
        found = getattr(importlib.import_module(module), attribute)
        holder = typer.Typer()
        if isinstance(found, typer.Typer):
            holder.add_typer(found, name=name, cls=SuggestingGroup)
        else:
            holder.command(name)(found)
        return typer.main.get_group(holder).commands[name]


COMMANDS: dict[str, Lazy] = {
    "chat": Lazy(
        target="bot.cli.core_commands:chat", help="Chat with Parley in the terminal (interactive without -m)."
    ),
    "usage": Lazy(target="bot.cli.core_commands:usage", help="Tokens and cost per workspace, user and model."),
    "config": Lazy(target="bot.cli.core_commands:config_app", help="Show the effective configuration."),
    "db": Lazy(target="bot.cli.core_commands:db_app", help="Database maintenance."),
    "feedback": Lazy(target="bot.cli.core_commands:feedback_app", help="Ratings people gave Parley's replies."),
    "settings": Lazy(
        target="bot.cli.settings:app",
        help="Settings per workspace and per channel: prompt, model settings, tools, memory, voice.",
    ),
    "limits": Lazy(
        target="bot.cli.limits:app",
        help="Spend limits in tokens or USD per day or month, per person, channel or workspace.",
    ),
    "audit": Lazy(
        target="bot.cli.audit:app", help="The audit log: changes of settings, limits, API keys, and forget requests."
    ),
    "tools": Lazy(target="bot.cli.core_commands:tools_app", help="The tools the agent can call."),
    "memory": Lazy(target="bot.cli.memory:app", help="Long-term memories: facts, re-embed, retention, forget, export."),
    "profile": Lazy(
        target="bot.cli.profile:app", help="Per-person profiles: name, language, time zone, answer style, voice."
    ),
    "history": Lazy(target="bot.cli.history:history", help="A person's conversation history, oldest first."),
    "discord": Lazy(target="bot.cli.discord:app", help="Run Parley as a Discord bot."),
    "eval": Lazy(
        target="bot.cli.eval:app",
        help="Evaluate Parley: run a suite of goldens through the real pipeline and score it with DeepEval.",
    ),
    "slack": Lazy(
        target="bot.cli.slack:app",
        help="Run Parley in Slack over Socket Mode (needs SLACK_APP_TOKEN and SLACK_BOT_TOKEN).",
    ),
    "serve": Lazy(target="bot.cli.serve:serve", help="Serve the HTTP API, the playground and Slack events."),
    "apikey": Lazy(target="bot.cli.apikey:app", help="API keys for the REST API and the playground."),
    "admin": Lazy(target="bot.cli.admin:app", help="The admin page: a one-time sign-in link."),
    "guard": Lazy(target="bot.cli.guard:app", help="Guardrails: check texts offline, list safety events."),
    "doctor": Lazy(
        target="bot.cli.doctor:doctor",
        help="Check the model, database, migrations, embeddings, OCR, speech, Slack and Discord with a real call each.",
    ),
}


class SuggestingGroup(TyperGroup):
    """An unknown command or option is answered with the names a slip of the keyboard away, or with none
    (bot.cli.suggest), instead of Click's near-misses; exit status 2 as for every usage error."""

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        known = self.list_commands(ctx)
        if args and not ctx.resilient_parsing and not args[0].startswith("-") and args[0] not in known:
            from bot.cli.suggest import with_suggestion  # only for a mistake: the root imports only Typer

            ctx.fail(with_suggestion(f"No such command {args[0]!r}.", args[0], known))
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as exc:
            raise _with_suggestion(exc) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoSuchOption as exc:  # a sub-command's option, parsed while this group invokes it
            raise _with_suggestion(exc) from None


class _Suggested(NoSuchOption):
    """An unknown option whose message already carries its suggestion (groups above pass it on)."""


def _with_suggestion(exc: NoSuchOption) -> NoSuchOption:
    if exc.ctx is None or isinstance(exc, _Suggested):
        return exc
    from bot.cli.suggest import with_suggestion

    names = [o for p in exc.ctx.command.get_params(exc.ctx) for o in (*p.opts, *p.secondary_opts) if o.startswith("-")]
    message = with_suggestion(f"No such option: {exc.option_name}.", exc.option_name, names)
    return _Suggested(exc.option_name, message=message, ctx=exc.ctx)


class LazyGroup(SuggestingGroup):
    """Knows every command of `COMMANDS` by name and help line; imports one only to run it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._listing = False
        for name, lazy in COMMANDS.items():
            self.commands[name] = TyperCommand(name, short_help=lazy.help, help=lazy.help)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        lazy = COMMANDS.get(cmd_name)
        if lazy is None or self._listing:
            return super().get_command(ctx, cmd_name)
        with startup_phase("imports"):
            return lazy.load(cmd_name)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The help lists the commands by their help lines, importing none of them."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="parley",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def parley() -> None:
    """Parley: a self-hosted AI assistant for Slack and Discord teams.

    Add --debug to any command (or set PARLEY_DEBUG=1) to see a traceback instead of the one-line error.
    """


def main() -> None:
    from bot.cli.common import run_cli

    try:
        run_cli(app)
    finally:
        # The process is ending. Python's finalisation runs full collections over every object the
        # command made or imported (NeMo, pydantic-ai, the encoder: seconds after a one-shot chat,
        # measured 3.3 s against 0.6 s under load); frozen, they are skipped. Exit handlers still run.
        gc.disable()
        gc.freeze()
