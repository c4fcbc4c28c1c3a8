"""`parley memory ...`: list a person's facts (with their history), re-embed, retention cleanup,
forget and export a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot.cli.common import (
    PlatformOpt,
    UserOpt,
    WorkspaceOpt,
    err,
    load_settings,
    operator,
    person,
    run,
    wide_table,
)
from bot.database import open_pool
from core.memory import facts
from core.memory.facts_view import visible_facts

app = typer.Typer(help="Long-term memories: facts, re-embed, retention, forget, export.", no_args_is_help=True)
out = Console()


@app.command("list")
def list_command(
    platform: PlatformOpt = "console",
    workspace: WorkspaceOpt = "local",
    user: UserOpt = None,
    channel: Annotated[str | None, typer.Option("--channel", "-c", help="Also this channel's notes.")] = None,
    history: Annotated[bool, typer.Option("--history", help="Also superseded and expired facts.")] = False,
) -> None:
    """What Parley knows about a person: their facts and the workspace's (and a channel's) notes."""
    settings = load_settings(model=False)
    key = person(platform, workspace, user)

    async def main() -> list[facts.Fact]:
        pool = await open_pool(settings)
        try:
            return await visible_facts(pool, key, channel_id=channel or "", history=history)
        finally:
            await pool.close()

    found = run(main())
    if not found:
        out.print(
            f"No facts about {key.user_id} in {platform}/{workspace} yet: facts come from what a person says about"
            ' themselves ("I\'m Sam", "I prefer answers in euros"). Their conversation is kept for recall either'
            " way; `parley memory export` shows all of it.",
            highlight=False,
        )
        return
    now = datetime.now(UTC)
    table = wide_table("id", "fact", "for", "said", "status")
    for fact in found:
        status = facts.describe(fact, now).partition("; ")[2] or "in force"
        said = f"{fact.said_at:%Y-%m-%d %H:%M}" + (f" by {fact.author_id}" if fact.scope != "person" else "")
        table.add_row(str(fact.id), fact.content, _home(fact, key.user_id), said, status)
    out.print(table)


def _home(fact: facts.Fact, person_id: str) -> str:
    """Whom a fact is for: the person listed (by id: an operator may be reading), a channel, the workspace."""
    return {"person": person_id, "channel": f"#{fact.channel_id}", "workspace": "workspace"}[fact.scope]


@app.command("reembed")
def reembed_command(
    batch: Annotated[int, typer.Option(min=1, help="Memories per forward pass.")] = 64,
) -> None:
    """Give every memory a vector of PARLEY_EMBEDDING_MODEL (after changing the model)."""
    settings = load_settings(model=False)
    from core.memory.embedding_backend import build_embedder, model_label
    from core.memory.reembed import pending_reembed, reembed

    async def main() -> int:
        embedder = build_embedder(settings.parley_embedding_model)
        pool = await open_pool(settings)
        try:
            total = await pending_reembed(pool, model_label(embedder))
            if not total:
                return 0
            with Progress(
                TextColumn("re-embedding"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
            ) as progress:
                task = progress.add_task("reembed", total=total)
                return await reembed(
                    pool, embedder, batch=batch, progress=lambda done: progress.update(task, completed=done)
                )
        finally:
            await pool.close()

    done = run(main())
    out.print(f"{done} memories re-embedded with {settings.parley_embedding_model}")


@app.command("cleanup")
def cleanup_command(
    days: Annotated[int | None, typer.Option(min=1, help="Retention in days (default PARLEY_RETENTION_DAYS).")] = None,
) -> None:
    """Delete memories older than the retention period."""
    settings = load_settings(model=False)
    retention = days or settings.parley_retention_days
    from core.memory.retention import cleanup_memories

    async def main() -> int:
        pool = await open_pool(settings)
        try:
            return await cleanup_memories(pool, retention_days=retention, now=datetime.now(UTC))
        finally:
            await pool.close()

    deleted = run(main())
    out.print(f"{deleted} memories older than {retention} days deleted")


@app.command("forget")
def forget_command(
    platform: PlatformOpt = "console",
    workspace: WorkspaceOpt = "local",
    user: UserOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete all of one person's rows in one workspace (memories, messages, profile, feedback, usage)."""
    settings = load_settings(model=False)
    from core.memory.forget import forget_user

    key = person(platform, workspace, user)
    if not yes and not typer.confirm(
        f"Delete everything about {key.user_id} in {platform}/{workspace}? This cannot be undone"
    ):
        err.print("Nothing deleted.")
        raise typer.Exit(1)

    async def main() -> dict[str, int]:
        pool = await open_pool(settings)
        try:
            return await forget_user(pool, key, by=operator())
        finally:
            await pool.close()

    counts = run(main())
    table = wide_table("table", "rows deleted")
    for name, n in counts.items():
        table.add_row(name, str(n))
    out.print(table)


@app.command("export")
def export_command(
    platform: PlatformOpt = "console",
    workspace: WorkspaceOpt = "local",
    user: UserOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write all of one person's rows in one workspace as JSON."""
    settings = load_settings(model=False)
    from core.memory.forget import export_user

    key = person(platform, workspace, user)

    async def main() -> dict[str, object]:
        pool = await open_pool(settings)
        try:
            return await export_user(pool, key)
        finally:
            await pool.close()

    text = json.dumps(run(main()), ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")
        err.print(f"written to {output}")
