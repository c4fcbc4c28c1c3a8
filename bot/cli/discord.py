"""`parley discord`: run Parley as a Discord bot (one process, or some shards of many), and
`parley discord invite`: the links that install it to a server and to a person's own account
(`invite-url` prints the server link alone)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bot.cli.common import err, load_settings, refuse_setting, run
from bot.settings import Settings

if TYPE_CHECKING:
    from adapters.discord import DiscordConfig

out = Console()
app = typer.Typer(help="Run Parley as a Discord bot.", no_args_is_help=False, invoke_without_command=True)


def discord_config(
    settings: Settings, *, shard_ids: tuple[int, ...] | None = None, shard_count: int | None = None
) -> DiscordConfig:
    """The adapter's configuration from the settings (DISCORD_* and PARLEY_* variables)."""
    from adapters.discord import DiscordConfig
    from adapters.discord.config import DEFAULT_API_BASE

    if settings.discord_token is None:
        raise ValueError("DISCORD_TOKEN is not set: create a bot in the Discord developer portal (docs/discord.md)")
    return DiscordConfig(
        token=settings.discord_token.get_secret_value(),
        api_base=settings.discord_api_base or DEFAULT_API_BASE,
        gateway_url=settings.discord_gateway_url,
        application_id=settings.discord_application_id,
        auto_thread=settings.parley_discord_auto_thread,
        max_file_bytes=int(settings.parley_max_file_mb * 1_000_000),
        shard_ids=shard_ids,
        shard_count=shard_count,
    )


@app.callback()
def serve(
    ctx: typer.Context,
    shard_ids: Annotated[
        str | None, typer.Option("--shard-ids", help="Shards this process runs, e.g. 0,1 or 0-3 (needs --shard-count).")
    ] = None,
    shard_count: Annotated[
        int | None, typer.Option("--shard-count", min=1, help="Shards in all processes (default: Discord's advice).")
    ] = None,
) -> None:
    """Connect to Discord and answer until stopped (Ctrl-C)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings(need_model=True)
    from adapters.discord import build_discord
    from adapters.discord.config import parse_shard_ids
    from bot.app import running

    try:
        config = discord_config(
            settings, shard_ids=parse_shard_ids(shard_ids) if shard_ids else None, shard_count=shard_count
        )
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc

    async def main() -> None:
        import discord

        async with running(settings, maintenance=True) as pipeline:
            client = build_discord(config, pipeline, pipeline.pool)
            try:
                await client.start()
            except discord.LoginFailure:
                # Said as a setting to change, not as discord.py's `LoginFailure: Improper token has been passed.`
                refuse_setting("DISCORD_TOKEN", "****", "Discord refused it",
                               "copy the token again from the Developer Portal's Bot page (Reset Token)")
            except discord.PrivilegedIntentsRequired:
                refuse_setting("DISCORD_TOKEN", "****", "the bot may not read message content",
                               "turn on Message Content Intent on the Developer Portal's Bot page")
            finally:
                await client.close()

    run(main())


@app.command("invite")
def invite() -> None:
    """Print both install links: to a server (with exactly the permissions Parley uses) and to a
    person's own account (its commands then work in any server or DM)."""
    from adapters.discord import invite_url
    from adapters.discord.invite import user_install_url

    settings = load_settings(database=False, model=False)
    application_id = _application_id(settings)
    print("Add Parley to a server (server install):")
    print(invite_url(application_id, auto_thread=settings.parley_discord_auto_thread))
    print("Install Parley to your own account (user install: /ask, /profile, /forget in any server or DM):")
    print(user_install_url(application_id))


@app.command("invite-url")
def invite_server() -> None:
    """Print only the link that adds Parley to a server (for scripts)."""
    from adapters.discord import invite_url

    settings = load_settings(database=False, model=False)
    print(invite_url(_application_id(settings), auto_thread=settings.parley_discord_auto_thread))


def _application_id(settings: Settings) -> str:
    if settings.discord_application_id is not None:
        return settings.discord_application_id
    if settings.discord_token is None:
        err.print("[red]Set DISCORD_APPLICATION_ID (or DISCORD_TOKEN to look it up).[/red]")
        raise typer.Exit(2)
    from adapters.discord.config import DEFAULT_API_BASE
    from adapters.discord.invite import fetch_application_id

    return run(
        fetch_application_id(
            settings.discord_token.get_secret_value(), api_base=settings.discord_api_base or DEFAULT_API_BASE
        )
    )
