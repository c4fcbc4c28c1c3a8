"""Helpers every CLI module shares: durations, async entry, settings with a clear failure, and the
top-level handler that turns an unexpected error into one line (the traceback only with --debug)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bot import config_check, observability
from bot.settings import MISSING_MODEL_HELP, Settings
from core.models import UserKey

if TYPE_CHECKING:
    from core.audit import Actor

T = TypeVar("T")
err = Console(stderr=True)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def wide_table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells wrap at spaces and fold long words (ids, model names, URLs) at any terminal
    width: a value is never cut short with an ellipsis."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def minute(moment: datetime | None) -> str:
    """A moment as tables show it, to the minute in UTC ("2026-12-07 14:59"; "" for none): an ISO stamp with
    seconds and offset is 25 characters, which an 80-column table folds over four lines."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """'7d', '12h', '30m' -> the moment that long ago; an ISO date is taken as is."""
    match = _DURATION.match(text)
    now = now or datetime.now(UTC)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a duration like 7d, 12h, 30m or an ISO date") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_settings(
    *,
    need_model: bool = False,
    model: bool = True,
    database: bool = True,
    log_to_file: bool = False,
    quiet: bool = False,
) -> Settings:
    """Settings checked before any model or database work (bot.config_check), or exit 2 saying what to
    fix; with `need_model`, also without PARLEY_MODEL. `model`: whether the command may call a model (its
    name and key are checked), `database`: whether it uses DATABASE_URL (it must answer).
    `log_to_file`: logs go to `log_file(settings)`, not stderr (an interactive chat keeps its screen to itself);
    `quiet`: stderr shows warnings and errors only, unless PARLEY_LOG_LEVEL asks for more (a one-shot answer
    is not followed by "turn done")."""
    try:
        settings = config_check.load(database=database, model=model or need_model)
    except config_check.ConfigError as exc:
        report_problems(exc.problems)
        raise typer.Exit(2) from None
    # Imported once the settings are known to be good: it brings the model clients (a second of imports),
    # which a misconfiguration should not wait for.
    from bot.local_model import with_default_model

    if need_model and not with_default_model(settings).parley_model:
        err.print(MISSING_MODEL_HELP, style="red", markup=False, highlight=False)
        raise typer.Exit(2)
    stream = open_log(settings) if log_to_file else None
    level = settings.parley_log_level
    if quiet and "parley_log_level" not in settings.model_fields_set and level in ("DEBUG", "INFO"):
        level = "WARNING"
    observability.configure(
        stream=stream,
        level=level,
        json_logs=settings.parley_log_json,
        logfire_token=settings.logfire_token.get_secret_value() if settings.logfire_token else None,
        trace_sample=settings.parley_trace_sample,
    )
    return settings


PlatformOpt = Annotated[str, typer.Option("--platform", "-p", help="console, slack, discord or api.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", help="Workspace id.")]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="User id (default: you, the OS user).")]
"""The same flags on every command about one person, defaulting like `parley chat`: console, local, you."""


def operator() -> Actor:
    """Who runs this command, as the audit log names them: the OS user at the terminal."""
    import getpass

    from core.audit import Actor

    return Actor(who=getpass.getuser(), door="cli")


def person(platform: str, workspace: str, user: str | None) -> UserKey:
    from adapters.console.chat import default_user

    return UserKey(platform=platform, workspace_id=workspace, user_id=user or default_user())


def log_file(settings: Settings) -> Path:
    """Where a command that owns the terminal (an interactive chat) writes its logs."""
    return settings.parley_data_dir / "logs" / "parley.log"


def open_log(settings: Settings) -> TextIO | None:
    """`log_file(settings)` opened to append, or None (logs to stderr) where the data folder cannot take it:
    `parley doctor` runs to report a read-only or full data folder, not to stop on it."""
    try:
        log_file(settings).parent.mkdir(parents=True, exist_ok=True)
        return log_file(settings).open("a", encoding="utf-8")
    except OSError:
        return None


def report_problems(problems: tuple[config_check.Problem, ...]) -> None:
    """One line a problem, under one heading: what to change, never a traceback."""
    heading = "Parley can't start: fix this setting." if len(problems) == 1 else (
        f"Parley can't start: fix these {len(problems)} settings."
    )
    err.print(heading, style="bold red", highlight=False)
    for problem in problems:
        err.print(f"  {problem}", markup=False, highlight=False, emoji=False, soft_wrap=True)


def refuse_setting(variable: str, value: str, what: str, fix: str) -> NoReturn:
    """Stop on one setting found unusable only when it was tried (a port in use, a token the platform
    refused): said as `report_problems` says a misconfiguration, exit 2."""
    report_problems((config_check.Problem(variable=variable, value=value, what=what, fix=fix),))
    raise typer.Exit(2)


def run_cli(app: Callable[[], Any]) -> None:
    """Run the CLI; an unexpected error becomes one line with what to do, its traceback only with
    `--debug` (anywhere on the command line) or PARLEY_DEBUG=1."""
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")
        os.environ["PARLEY_DEBUG"] = "1"
    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if config_check.debug_requested():
            raise
        err.print(f"parley: {type(exc).__name__}: {exc}", style="red", markup=False, highlight=False, emoji=False)
        err.print("Run it again with --debug (or PARLEY_DEBUG=1) for the details; `parley doctor` checks "
                  "every component.", markup=False, highlight=False)
        raise SystemExit(1) from None


def run(coro: Coroutine[Any, Any, T], *, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> T:
    """Run a command's main coroutine; a model that cannot start (the local one) is a message, exit 2."""
    from core.llm import ModelNotConfigured

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)
    except ModelNotConfigured as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except config_check.ConfigError as exc:  # a setting found unusable only once used (a refused database login)
        report_problems(exc.problems)
        raise typer.Exit(2) from None
