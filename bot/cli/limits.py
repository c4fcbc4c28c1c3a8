"""`parley limits set|show|clear`: spend limits in tokens or USD, per day or month, per person, channel or
workspace. A turn over a limit is answered with a short message and the model is not called; a person
is warned once a period at 80 %. USD limits count only turns whose cost is known (a provider without a
price list records none): such turns count towards token limits only."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from bot.cli.common import PlatformOpt, WorkspaceOpt, err, load_settings, operator, run, wide_table
from bot.database import open_pool
from core.limits import (
    MAX_AMOUNT,
    Metric,
    Period,
    Scope,
    SpendLimit,
    clear_limit,
    describe,
    list_limits,
    set_limit,
)
from core.models import WorkspaceKey

app = typer.Typer(help="Spend limits in tokens or USD per day or month, per person, channel or workspace.",
                  no_args_is_help=True)
out = Console()
PersonOpt = Annotated[str | None, typer.Option("--user", "-u", help="A person's id: their own limit.")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", "-c", help="A channel id: the channel's limit.")]
MetricArg = Annotated[Metric, typer.Argument(help="tokens or usd")]
PeriodArg = Annotated[Period, typer.Argument(help="day or month (UTC)")]


@app.command("set")
def limits_set(
    metric: MetricArg,
    period: PeriodArg,
    amount: Annotated[
        float, typer.Argument(min=0, max=MAX_AMOUNT, help="The most a period may use (tokens, or USD).")
    ],
    workspace: WorkspaceOpt = "local",
    platform: PlatformOpt = "console",
    user: PersonOpt = None,
    channel: ChannelOpt = None,
) -> None:
    """Set or change a limit: for one person (--user), one channel (--channel) or the whole workspace."""
    limit = _limit(platform, workspace, user, channel, metric, period, amount)
    settings = load_settings(model=False)

    async def main() -> float | None:
        pool = await open_pool(settings, max_size=2)
        try:
            return await set_limit(pool, _workspace(limit), limit, by=operator())
        finally:
            await pool.close()

    old = run(main())
    note = " (USD: turns of unknown cost count towards token limits only)" if metric == "usd" else ""
    out.print(f"{platform}/{workspace} {describe(limit)} = {amount:g}" + (f" (was {old:g})" if old is not None else "")
              + note, markup=False, highlight=False)


@app.command("clear")
def limits_clear(
    metric: MetricArg,
    period: PeriodArg,
    workspace: WorkspaceOpt = "local",
    platform: PlatformOpt = "console",
    user: PersonOpt = None,
    channel: ChannelOpt = None,
) -> None:
    """Remove a limit."""
    limit = _limit(platform, workspace, user, channel, metric, period, 0)
    settings = load_settings(model=False)

    async def main() -> float | None:
        pool = await open_pool(settings, max_size=2)
        try:
            return await clear_limit(pool, _workspace(limit), limit, by=operator())
        finally:
            await pool.close()

    if run(main()) is None:
        err.print(f"No {describe(limit)} limit in {platform}/{workspace}; `parley limits show` lists them.",
                  style="red", markup=False, highlight=False)
        raise typer.Exit(1)
    out.print(f"{platform}/{workspace} {describe(limit)} cleared", markup=False, highlight=False)


@app.command("show")
def limits_show(
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Only this workspace.")] = None,
    platform: Annotated[str | None, typer.Option("--platform", "-p", help="Only this platform.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every limit in force."""
    settings = load_settings(model=False)

    async def main() -> list[SpendLimit]:
        pool = await open_pool(settings, max_size=2)
        try:
            return await list_limits(pool, platform=platform, workspace_id=workspace)
        finally:
            await pool.close()

    found = run(main())
    if as_json:
        print(json.dumps([asdict(limit) for limit in found]))
        return
    table = wide_table("platform", "workspace", "applies to", "metric", "period", "amount")
    table.caption = "USD limits count turns of known cost only."
    for limit in found:
        who = limit.scope if limit.scope == "workspace" else f"{limit.scope} {limit.subject}"
        table.add_row(limit.platform, limit.workspace_id, who, limit.metric, limit.period, f"{limit.amount:g}")
    out.print(table)


def _limit(
    platform: str, workspace: str, user: str | None, channel: str | None, metric: Metric, period: Period,
    amount: float,
) -> SpendLimit:
    if user and channel:
        err.print("A limit is for a person (--user) or a channel (--channel), not both.", style="red")
        raise typer.Exit(2)
    scope: Scope = "person" if user else "channel" if channel else "workspace"
    return SpendLimit(platform=platform, workspace_id=workspace, scope=scope, subject=user or channel or "",
                      metric=metric, period=period, amount=amount)


def _workspace(limit: SpendLimit) -> WorkspaceKey:
    return WorkspaceKey(platform=limit.platform, workspace_id=limit.workspace_id)
