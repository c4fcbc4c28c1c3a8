"""`parley audit list`: who changed a setting, a limit, an API key, or asked to forget someone — when,
from which value to which, and through which door (cli, api, admin page, slack, discord, chat)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console

from bot.cli.common import load_settings, parse_since, run, wide_table
from bot.database import open_pool
from core.audit import AuditEntry, list_entries

app = typer.Typer(help="The audit log: changes of settings, limits, API keys, and forget requests.",
                  no_args_is_help=True)
out = Console()


@app.command("list")
def audit_list(
    since: Annotated[str, typer.Option(help="How far back: 7d, 12h, 30m or an ISO date.")] = "30d",
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Only this workspace.")] = None,
    platform: Annotated[str | None, typer.Option("--platform", "-p", help="Only this platform.")] = None,
    action: Annotated[str | None, typer.Option(help="Only actions starting so: setting, limit, apikey.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many entries.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Newest first."""
    start = parse_since(since)
    settings = load_settings(model=False)

    async def main() -> list[AuditEntry]:
        pool = await open_pool(settings, max_size=2)
        try:
            return await list_entries(pool, since=start, platform=platform, workspace_id=workspace, action=action,
                                      limit=limit)
        finally:
            await pool.close()

    entries = run(main())
    if as_json:
        print(json.dumps([asdict(e) for e in entries], default=str))
        return
    table = wide_table("time", "workspace", "who", "door", "action", "what", "old", "new")
    for e in entries:
        table.add_row(e.created_at.isoformat(timespec="seconds"), f"{e.platform}/{e.workspace_id}", e.actor, e.door,
                      e.action, e.target, _shown(e.old_value), _shown(e.new_value))
    out.print(table)


def _shown(value: Any) -> str:
    text = "" if value is None else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
