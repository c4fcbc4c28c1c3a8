"""`parley history [--workspace W] [--user U] [--thread T]`: a person's conversation history (property 50)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from bot.cli.common import UserOpt, WorkspaceOpt, load_settings, minute, person, run, wide_table
from bot.database import open_pool
from core.memory.conversations import HistoryMessage, user_history, user_platforms
from core.models import UserKey

app = typer.Typer(help="A person's conversation history, oldest first.")
out = Console()


@app.callback(invoke_without_command=True)
def history(
    workspace: WorkspaceOpt = "local",
    user: UserOpt = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="Only this thread.")] = None,
    platform: Annotated[
        str | None, typer.Option("--platform", "-p", help="console, slack, discord or api (default: all).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the newest N messages.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """A person's conversation history, oldest first.

    The messages of one person in one workspace (or one of their threads).
    """
    settings = load_settings(model=False)
    user = person("console", workspace, user).user_id

    async def main() -> list[tuple[str, HistoryMessage]]:
        pool = await open_pool(settings)
        try:
            platforms = [platform] if platform else await user_platforms(pool, workspace, user)
            rows: list[tuple[str, HistoryMessage]] = []
            for p in platforms:
                key = UserKey(platform=p, workspace_id=workspace, user_id=user)
                rows += [(p, m) for m in await user_history(pool, key, thread_id=thread, limit=limit)]
            return rows
        finally:
            await pool.close()

    rows = run(main())
    if as_json:
        for p, m in rows:
            typer.echo(
                json.dumps(
                    {
                        "platform": p,
                        "id": m.id,
                        "channel_id": m.channel_id,
                        "thread_id": m.thread_id,
                        "role": m.role,
                        "content": m.content,
                        "created_at": m.created_at.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        return
    table = wide_table("when", "platform", "thread", "role", "message")
    for p, m in rows:
        table.add_row(minute(m.created_at), p, m.thread_id, m.role, m.content)
    out.print(table)
