"""`parley slack`: Parley in Slack over Socket Mode (no public URL needed).

HTTP mode is `parley serve`, which includes the same adapter's router at POST /slack/events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from importlib.resources import files
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr

from bot.cli.common import err, load_settings, refuse_setting, run
from bot.settings import Settings

if TYPE_CHECKING:
    from adapters.slack.app import SlackConfig
    from core.media.config import VoiceFormat

SLACK_VOICE_FORMAT: VoiceFormat = "mp3"
"""Spoken replies as mp3, which Slack's file preview plays in the thread."""

app = typer.Typer(
    help="Run Parley in Slack over Socket Mode (needs SLACK_APP_TOKEN and SLACK_BOT_TOKEN).",
    invoke_without_command=True,
)


def slack_config(settings: Settings) -> SlackConfig:
    """The Slack adapter's config from the environment (`parley serve` uses it too)."""
    from adapters.slack.app import SlackConfig

    return SlackConfig(
        bot_token=_secret(settings.slack_bot_token),
        signing_secret=_secret(settings.slack_signing_secret),
        app_token=_secret(settings.slack_app_token),
        api_url=settings.slack_api_url,
        client_id=settings.slack_client_id,
        client_secret=_secret(settings.slack_client_secret),
        state_secret=_secret(settings.slack_state_secret),
        thread_followups=settings.parley_thread_followups,
        agent_view=settings.slack_agent_view,
        max_file_bytes=int(settings.parley_max_file_mb * 1_000_000),
    )


@app.callback()
def slack(
    ctx: typer.Context,
    drain_s: Annotated[float, typer.Option(help="On shutdown, wait this long for replies in flight.")] = 30.0,
) -> None:
    """Connect to Slack over Socket Mode and answer until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings(need_model=True)
    if settings.slack_app_token is None or (settings.slack_bot_token is None and settings.slack_client_id is None):
        err.print("[red]Socket Mode needs SLACK_APP_TOKEN and SLACK_BOT_TOKEN (see docs/slack.md).[/red]")
        raise typer.Exit(2)
    from adapters.slack.app import RefusedToken, build_slack
    from bot.app import running

    async def main() -> None:
        stop_on_sigterm()
        async with running(settings, voice_format=SLACK_VOICE_FORMAT, maintenance=True) as pipeline:
            config = dataclasses.replace(slack_config(settings), drain_timeout_s=drain_s)
            try:
                await build_slack(config, pipeline, pipeline.pool).run_socket_mode()
            except RefusedToken as refused:
                refuse_setting(refused.variable, "****", f"Slack refused it ({refused.error})", refused.fix)

    try:
        run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("Slack: stopped.")


@app.command("manifest")
def manifest() -> None:
    """Print the app manifest to paste into https://api.slack.com/apps (Create New App > From a manifest)."""
    print(files("adapters.slack").joinpath("manifest.yml").read_text(encoding="utf-8"), end="")


def stop_on_sigterm() -> None:
    """SIGTERM (Fly.io, Docker, systemd) stops like Ctrl-C: the socket closes, replies in flight finish."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() or None if value is not None else None
