"""Foundation commands: chat, config, db, usage, feedback, tools."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from bot.cli.common import err, load_settings, log_file, parse_since, report_problems, run, wide_table
from bot.database import open_pool, start_early
from bot.settings import get_settings, unset_defaults
from core.feedback import list_feedback
from core.store.migrations import migrate
from core.telemetry import startup_phase
from core.turns import usage_since

if TYPE_CHECKING:
    from core.media.config import VoiceFormat

out = Console()
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
feedback_app = typer.Typer(help="Ratings people gave Parley's replies.", no_args_is_help=True)
tools_app = typer.Typer(help="The tools the agent can call.", no_args_is_help=True)

WorkspaceOpt = Annotated[str, typer.Option("--workspace", "-w", help="Workspace id.")]
PlatformOpt = Annotated[str, typer.Option("--platform", "-p", help="console, slack, discord or api.")]


def chat(
    message: Annotated[str | None, typer.Option("--message", "-m", help="Answer this once and exit.")] = None,
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Workspace id.")] = "local",
    user: Annotated[str | None, typer.Option("--user", "-u", help="Default: the OS user.")] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="Continue this conversation.")] = None,
    attach: Annotated[list[Path] | None, typer.Option(
        "--attach", "-a", exists=True, dir_okay=False,
        help="With -m: send this file with the message (an image, a document or a voice note); repeat for "
             "several.")] = None,
    voice_reply: Annotated[
        Path | None, typer.Option("--voice-reply", help="With -m: write a spoken reply here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With -m: print one JSON object.")] = False,
) -> None:
    """Chat with Parley in the terminal (interactive without -m)."""
    interactive = message is None
    one_shot_only = [flag for flag, given in (("--attach", attach), ("--voice-reply", voice_reply),
                                              ("--json", as_json)) if given]
    if interactive and one_shot_only:
        err.print(f"[red]Only a one-shot chat (-m \"...\") takes {' and '.join(one_shot_only)}[/red]: add -m with "
                  "the message, or leave them out for the interactive chat.", highlight=False)
        raise typer.Exit(2)
    settings = load_settings(need_model=True, log_to_file=interactive, quiet=not interactive)
    start_early(settings)
    with startup_phase("imports"):
        from adapters.console import chat as console_chat
        from bot.app import running

    user = user or console_chat.default_user()
    thread = thread or console_chat.new_thread()

    async def main() -> int:
        voice_format: VoiceFormat = "mp3" if voice_reply is not None and voice_reply.suffix.lower() == ".mp3" else "ogg"
        async with running(settings, voice_format=voice_format, warm_guard=message is None) as pipeline:
            if pipeline.config.model_notice:
                err.print(f"[yellow]{pipeline.config.model_notice}[/yellow]")
            if message is None:
                chat_session = console_chat.ConsoleChat(
                    pipeline=pipeline, workspace=workspace, user=user, thread=thread, console=out,
                    history_file=settings.parley_data_dir / "chat_history", log_file=log_file(settings),
                )
                await chat_session.run()
                return 0
            inbound = console_chat.inbound(
                message,
                workspace=workspace,
                user=user,
                thread=thread,
                attachments=console_chat.read_attachments(attach or []),
                voice_reply=True if voice_reply else None,
            )
            with startup_phase("first turn"):
                reply = await pipeline.run(inbound)
            if voice_reply is not None:
                if reply.audio is None:
                    err.print("[yellow]No voice reply was produced (the reply was blocked or failed).[/yellow]")
                else:
                    voice_reply.write_bytes(reply.audio)
            if as_json:
                print(json.dumps(console_chat.reply_json(reply), ensure_ascii=False))
            else:
                out.print(reply.text)
            # A turn that failed (model unreachable, rate or spend limit) is answered with an apology, and a
            # script must not take it for an answer: exit 1 (the log line above it names the fix).
            return 1 if reply.error else 0

    raise typer.Exit(run(main()))


def usage(since: Annotated[str, typer.Option(help="7d, 24h, or an ISO date.")] = "7d") -> None:
    """Tokens and cost per workspace, user and model."""
    settings = load_settings(model=False)

    async def main() -> None:
        pool = await open_pool(settings)
        try:
            rows = await usage_since(pool, parse_since(since))
        finally:
            await pool.close()
        table = wide_table("platform", "workspace", "user", "model", "calls", "input", "output", "cost_usd")
        for r in rows:
            cost = f"{r.cost_usd:.6f}" if r.cost_usd is not None else "unknown"
            table.add_row(r.platform, r.workspace_id, r.user_id, r.model, str(r.calls), str(r.input_tokens),
                          str(r.output_tokens), cost)
        out.print(table)

    run(main())


@config_app.command("show")
def config_show() -> None:
    """Print every setting's effective value, secrets masked, then what needs fixing (exit 2 if anything)."""
    from bot import config_check

    try:
        settings = get_settings()
    except ValidationError as exc:
        report_problems(tuple(config_check.from_validation(exc, config_check.secret_fields())))
        raise typer.Exit(2) from None
    table = wide_table("setting", "value")
    for name, value in (settings.masked() | unset_defaults(settings)).items():
        table.add_row(name, value)
    out.print(table)
    found = config_check.problems(settings, os.environ)
    if found:
        report_problems(tuple(found))
        raise typer.Exit(2)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending database migrations."""
    settings = load_settings(model=False)
    from bot.database import database_uri

    applied = run(migrate(database_uri(settings)))
    out.print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@db_app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="The file to write (replaced only once the backup is complete).")],
) -> None:
    """Back up the whole database to FILE (pg_dump's custom format); Parley may keep running."""
    settings = load_settings(model=False)
    from bot.cli.backup import BackupError, backup
    from bot.database import database_uri

    try:
        done = backup(database_uri(settings), file)
    except BackupError as exc:
        err.print(f"No backup made: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None
    out.print(f"Backed up {done.tables} tables to {done.path} ({done.size / 1e6:.1f} MB) in {done.seconds:.1f} s. "
              f"Restore with: parley db restore {done.path}", markup=False, highlight=False)


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A file `parley db backup` wrote.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a database that already holds data (all of it).")
    ] = False,
) -> None:
    """Restore FILE into the database, in one transaction; a database with data is refused without --force.

    Stop every Parley using the database first (serve, chat, slack, discord)."""
    settings = load_settings(model=False)
    from bot.cli.backup import BackupError, check_backup, held, in_use, restore
    from bot.database import database_uri, report_migrations

    def refuse(message: str) -> NoReturn:
        err.print(f"Nothing restored: {message}", style="red", markup=False, highlight=False)
        raise typer.Exit(1)

    try:
        check_backup(file)
    except BackupError as exc:
        refuse(str(exc))
    uri = database_uri(settings)
    users = run(in_use(uri))
    if users:
        refuse(f"the database is in use by {', '.join(users)}. Stop every Parley using it (serve, chat, slack, "
               "discord), then run this again.")
    def described(found: dict[str, int]) -> str:
        rows = ", ".join(f"{n} {table}" for table, n in found.items() if table != "tables")
        return f"{found['tables']} tables ({rows})"

    there = run(held(uri))
    if there["tables"] and not force:
        refuse(f"the database already holds {described(there)}. `--force` replaces all of it with "
               f"the backup; keep a copy first: parley db backup before-restore.dump")
    try:
        restore(uri, file, replace=force)
    except BackupError as exc:
        refuse(str(exc))
    report_migrations(run(migrate(uri)))
    out.print(f"Restored {file}: {described(run(held(uri)))}.", markup=False, highlight=False)


@feedback_app.command("list")
def feedback_list(
    since: Annotated[str, typer.Option(help="7d, 24h, or an ISO date.")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list of the ratings.")] = False,
) -> None:
    """Ratings of Parley's replies, oldest first."""
    settings = load_settings(model=False)

    async def main() -> None:
        pool = await open_pool(settings)
        try:
            rows = await list_feedback(pool, parse_since(since))
        finally:
            await pool.close()
        if as_json:
            print(json.dumps([asdict(r) for r in rows], default=str))
            return
        table = wide_table("time", "platform", "workspace", "user", "turn", "score", "source")
        for r in rows:
            table.add_row(r.created_at.isoformat(timespec="seconds"), r.platform, r.workspace_id, r.user_id,
                          str(r.turn_id), f"{r.score:+d}", r.source)
        out.print(table)

    run(main())


@tools_app.command("list")
def tools_list() -> None:
    """Every registered tool: built-ins, entry-point plugins and MCP servers."""
    settings = load_settings(database=False, model=False)
    from bot.app import build_registry

    registry = build_registry(settings)
    for name in registry.names:
        out.print(name)


