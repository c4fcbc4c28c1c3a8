"""`parley profile show|set`: how one person in one workspace wants to be answered."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from bot.cli.common import PlatformOpt, UserOpt, WorkspaceOpt, err, load_settings, person, run
from bot.database import open_pool
from core.seams import Profile

if TYPE_CHECKING:
    from core.memory.profiles import AnswerStyle

app = typer.Typer(help="Per-person profiles: name, language, time zone, answer style, voice.", no_args_is_help=True)



@app.command("show")
def show(platform: PlatformOpt = "console", workspace: WorkspaceOpt = "local", user: UserOpt = None) -> None:
    """Print the profile as JSON."""
    settings = load_settings(model=False)
    from core.memory.profiles import get_profile

    key = person(platform, workspace, user)

    async def main() -> Profile:
        pool = await open_pool(settings)
        try:
            return await get_profile(pool, key)
        finally:
            await pool.close()

    typer.echo(json.dumps(asdict(run(main())), ensure_ascii=False, indent=2))


@app.command("set")
def set_(
    platform: PlatformOpt = "console",
    workspace: WorkspaceOpt = "local",
    user: UserOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name ('' clears).")] = None,
    language: Annotated[str | None, typer.Option(help="Answer language ('' clears).")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")] = None,
    style: Annotated[str | None, typer.Option(help="short or detailed.")] = None,
    voice: Annotated[bool | None, typer.Option("--voice/--no-voice", help="Spoken replies.")] = None,
    about: Annotated[str | None, typer.Option(help="Free notes about the person ('' clears).")] = None,
) -> None:
    """Change some fields of the profile; the others stay."""
    settings = load_settings(model=False)
    from core.memory.profiles import ProfileChanges, update_profile

    key = person(platform, workspace, user)
    try:
        changes = ProfileChanges(
            display_name=name,
            language=language,
            timezone=timezone,
            answer_style=_style(style),
            voice_replies=voice,
            about=about,
        )
    except ValidationError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc

    async def main() -> Profile:
        pool = await open_pool(settings)
        try:
            return await update_profile(pool, key, changes)
        finally:
            await pool.close()

    typer.echo(json.dumps(asdict(run(main())), ensure_ascii=False, indent=2))


def _style(value: str | None) -> AnswerStyle | None:
    if value is None:
        return None
    if value not in ("short", "detailed"):
        raise typer.BadParameter("--style must be short or detailed")
    return "short" if value == "short" else "detailed"
