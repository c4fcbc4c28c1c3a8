"""The OAuth2 URL that adds Parley to a server, with exactly the scopes and permissions it uses."""

from __future__ import annotations

import asyncio

import discord
from discord.http import HTTPClient, Route

SCOPES: tuple[str, ...] = ("bot", "applications.commands")
"""`bot` joins the server; `applications.commands` lets Parley register its slash commands."""


def required_permissions(*, auto_thread: bool) -> discord.Permissions:
    """What Parley does in a channel: read it, answer (replies need the history), answer in threads,
    upload voice replies; and, with auto threads on, start public threads."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        read_message_history=True,
        attach_files=True,
        create_public_threads=auto_thread,
    )


def invite_url(application_id: str, *, auto_thread: bool) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=required_permissions(auto_thread=auto_thread), scopes=SCOPES
    )


def required_intents() -> discord.Intents:
    """Guild state, messages and reactions in servers and DMs, and message content (privileged:
    without it Discord sends empty `content` for messages that do not mention Parley, so follow-ups
    in threads and replies would arrive blank)."""
    return discord.Intents(
        guilds=True,
        guild_messages=True,
        dm_messages=True,
        guild_reactions=True,
        dm_reactions=True,
        message_content=True,
    )


async def fetch_application_id(token: str, *, api_base: str) -> str:
    """The application id behind a bot token (GET /oauth2/applications/@me), for when it isn't configured."""
    Route.BASE = api_base.rstrip("/")
    http = HTTPClient(asyncio.get_running_loop())
    try:
        await http.static_login(token)
        info = await http.application_info()
    finally:
        await http.close()
    return str(info["id"])
