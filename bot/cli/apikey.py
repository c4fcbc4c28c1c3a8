"""`parley apikey create|list|revoke`: API keys of a workspace (shown once, stored hashed)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from bot.cli.common import err, load_settings, minute, operator, run, wide_table
from bot.database import open_pool
from core.apikeys import ApiKeyInfo, create_api_key, list_api_keys, revoke_api_key

app = typer.Typer(help="API keys for the REST API and the playground.", no_args_is_help=True)
out = Console()


@app.command("create")
def create(
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="The workspace the key acts for.")],
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="An operator's key: it opens /admin and /v1/admin.")] = False,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            "-u",
            help="Bind the key to this user_id: it acts only for them (403 for any other). Without it the key is "
                 "workspace-wide: it acts for any user_id of its workspace, so give it only to integrations you trust.",
        ),
    ] = None,
) -> None:
    """Make a key; it is printed once, alone on the last line, and cannot be shown again."""
    from adapters.api.schemas import USER_ID

    if user is not None and not re.fullmatch(USER_ID, user):
        err.print(f"[red]{user!r} is not a user_id[/red]: 1 to 128 of letters, digits and _ . @ : -")
        raise typer.Exit(2)
    settings = load_settings(model=False)

    async def main() -> tuple[ApiKeyInfo, str]:
        pool = await open_pool(settings, max_size=2)
        try:
            return await create_api_key(
                pool, workspace_id=workspace, name=name, admin=admin, user_id=user, by=operator()
            )
        finally:
            await pool.close()

    try:
        info, key = run(main())
    except ValueError as exc:  # core's rule on which keys may exist (an admin key bound to one user)
        err.print(f"[red]No key made[/red]: {exc}.", highlight=False)
        raise typer.Exit(2) from None
    kind = "admin API key" if admin else "API key"
    whom = f"user {user!r} of workspace" if user is not None else "workspace"
    print(f"Created {kind} {info.key_id} for {whom} {info.workspace_id!r}. Store it now; it is not shown again:")
    print(key)


@app.command("list")
def list_keys(
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Only this workspace.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Keys by id (never the keys themselves), revoked ones included."""
    settings = load_settings(model=False)

    async def main() -> list[ApiKeyInfo]:
        pool = await open_pool(settings, max_size=2)
        try:
            return await list_api_keys(pool, workspace_id=workspace)
        finally:
            await pool.close()

    keys = run(main())
    if as_json:
        print(json.dumps([asdict(k) for k in keys], default=str))
        return
    table = wide_table("id", "workspace", "acts for", "name", "admin", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k.key_id,
            k.workspace_id,
            k.scope,
            k.name,
            "yes" if k.admin else "",
            minute(k.created_at),
            minute(k.last_used_at),
            minute(k.revoked_at),
        )
    out.print(table)


@app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, as `parley apikey list` shows it.")]) -> None:
    """Revoke a key at once; requests with it get 401 from then on."""
    settings = load_settings(model=False)

    async def main() -> bool:
        pool = await open_pool(settings, max_size=2)
        try:
            return await revoke_api_key(pool, key_id, by=operator())
        finally:
            await pool.close()

    if not run(main()):
        err.print(f"[red]No live key with id {key_id!r}.[/red] `parley apikey list` shows the ids.")
        raise typer.Exit(1)
    out.print(f"revoked {key_id}")
