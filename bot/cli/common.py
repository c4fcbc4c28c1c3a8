"""Helpers every CLI module shares: durations, async entry, settings with a clear failure."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from bot import observability
from bot.local_model import with_default_model
from bot.settings import MISSING_MODEL_HELP, Settings, get_settings
from core.llm import ModelNotConfigured

T = TypeVar("T")
err = Console(stderr=True)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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


def load_settings(*, need_model: bool = False) -> Settings:
    """Settings, or exit 2 with what is wrong; with `need_model`, fail at once when no model would answer
    (no PARLEY_MODEL, and no local model to fall back on)."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        err.print(f"[red]Invalid configuration:[/red]\n{exc}")
        raise typer.Exit(2) from exc
    if need_model and not with_default_model(settings).parley_model:
        err.print(f"[red]{MISSING_MODEL_HELP}[/red]")
        raise typer.Exit(2)
    observability.configure(
        level=settings.parley_log_level,
        json_logs=settings.parley_log_json,
        logfire_token=settings.logfire_token.get_secret_value() if settings.logfire_token else None,
        trace_sample=settings.parley_trace_sample,
    )
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's main coroutine; a model that cannot start (the local one) is a message, exit 2."""
    try:
        return asyncio.run(coro)
    except ModelNotConfigured as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
