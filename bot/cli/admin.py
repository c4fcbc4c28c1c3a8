"""`parley admin link`: a one-time link that signs a browser in to the admin page (/admin).

The link carries an admin key named `admin-link` that the page spends on first use (adapters/web/admin.py),
so the link is worth nothing once opened, and nothing after the server's restart differs: it is stored
hashed like any key. The admin key typed into the page works as before.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import load_settings, operator, run
from bot.database import open_pool
from core.apikeys import ADMIN_LINK, KEY_LIFETIMES, create_api_key, revoke_named

app = typer.Typer(help="The admin page: a one-time sign-in link.", no_args_is_help=True)


@app.command("link")
def link(
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="The workspace the admin key belongs to.")],
    url: Annotated[
        str | None, typer.Option(help="Where `parley serve` is reached (default: its PARLEY_HOST and PORT).")
    ] = None,
) -> None:
    """Print a link that signs a browser in to /admin once; links made before it stop working."""
    settings = load_settings(model=False)

    async def main() -> str:
        pool = await open_pool(settings, max_size=2)
        try:
            await revoke_named(pool, workspace_id=workspace, name=ADMIN_LINK, by=operator())
            _, token = await create_api_key(pool, workspace_id=workspace, name=ADMIN_LINK, admin=True,
                                            by=operator())
            return token
        finally:
            await pool.close()

    token = run(main())
    base = (url or f"http://{settings.parley_host}:{settings.port}").rstrip("/")
    minutes = int(KEY_LIFETIMES[ADMIN_LINK].total_seconds() // 60)
    print(f"Open this link to sign in to the admin page (it works once, within {minutes} minutes):")
    print(f"{base}/admin?token={token}")
