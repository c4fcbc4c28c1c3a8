"""`parley settings set|unset|show`: operator settings per workspace and per channel.

The nearest layer wins (channel, then workspace, then the environment); `show` prints each setting's
effective value and where it came from. Every change lands in the audit log (`parley audit list`).
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.console import Console

from bot.cli.common import PlatformOpt, WorkspaceOpt, err, load_settings, operator, run, wide_table
from bot.config_check import model_problems
from bot.database import open_pool
from bot.settings import environment_layer
from core.channel_settings import BUILTIN, KEYS, UnknownSetting, describe, parse, resolve_all
from core.models import WorkspaceKey
from core.workspace import load_layers, set_override, unset_override

app = typer.Typer(help="Settings per workspace and per channel: prompt, model settings, tools, memory, voice.",
                  no_args_is_help=True)
out = Console()
ChannelOpt = Annotated[str, typer.Option("--channel", "-c", help="A channel id; without it, the whole workspace.")]
KeyArg = Annotated[str, typer.Argument(help=", ".join(KEYS))]


@app.command("set")
def settings_set(
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="A JSON value (0.2, true, [\"calculate\"]); other text is a string.")],
    workspace: WorkspaceOpt = "local",
    channel: ChannelOpt = "",
    platform: PlatformOpt = "console",
) -> None:
    """Set a value for a workspace, or for one of its channels with --channel."""
    try:
        parsed = parse(key, value)
    except UnknownSetting as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    settings = load_settings(model=False)
    unusable = model_problems("model", parsed, settings, os.environ) if key == "model" else []
    if unusable:
        err.print(f"model: {unusable[0].what}; {unusable[0].fix}", style="red", markup=False, highlight=False)
        raise typer.Exit(2)

    async def main() -> Any:
        pool = await open_pool(settings, max_size=2)
        try:
            return await set_override(pool, _workspace(platform, workspace), key, parsed, by=operator(),
                                      channel_id=channel)
        finally:
            await pool.close()

    old = run(main())
    out.print(f"{_where(platform, workspace, channel)}: {key} = {json.dumps(parsed)}"
              + (f" (was {json.dumps(old)})" if old is not None else ""), markup=False, highlight=False)


@app.command("unset")
def settings_unset(
    key: KeyArg, workspace: WorkspaceOpt = "local", channel: ChannelOpt = "", platform: PlatformOpt = "console"
) -> None:
    """Remove a value: the next layer (the workspace's, then the environment's) applies again."""
    if key not in KEYS:
        err.print(f"unknown setting {key!r}; known: {', '.join(KEYS)}", style="red", markup=False)
        raise typer.Exit(2)
    settings = load_settings(model=False)

    async def main() -> Any:
        pool = await open_pool(settings, max_size=2)
        try:
            return await unset_override(pool, _workspace(platform, workspace), key, by=operator(), channel_id=channel)
        finally:
            await pool.close()

    old = run(main())
    where = _where(platform, workspace, channel)
    out.print(f"{where}: {key} unset (was {json.dumps(old)})" if old is not None else f"{where}: {key} was not set",
              markup=False, highlight=False)


@app.command("show")
def settings_show(
    workspace: WorkspaceOpt = "local",
    channel: ChannelOpt = "",
    platform: PlatformOpt = "console",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every setting's effective value for a workspace (or one of its channels) and where it came from."""
    settings = load_settings(model=False)

    async def main() -> Any:
        pool = await open_pool(settings, max_size=2)
        try:
            return await load_layers(pool, _workspace(platform, workspace), channel)
        finally:
            await pool.close()

    layers = run(main())
    effective = resolve_all(channel=layers.channel, workspace=layers.workspace, environment=environment_layer(settings))
    if as_json:
        print(json.dumps({k: {"value": e.value, "source": e.source} for k, e in effective.items()}))
        return
    table = wide_table("setting", "value", "from", "what it does", title=_where(platform, workspace, channel))
    for key, found in effective.items():
        shown = json.dumps(found.value) if found.value is not None else BUILTIN.get(key, "provider's default")
        table.add_row(key, shown, found.source, describe(key))
    out.print(table)


def _workspace(platform: str, workspace: str) -> WorkspaceKey:
    return WorkspaceKey(platform=platform, workspace_id=workspace)


def _where(platform: str, workspace: str, channel: str) -> str:
    return f"{platform}/{workspace}" + (f" #{channel}" if channel else "")
