"""The OAuth2 URLs that install Parley: to a server (with exactly the scopes and permissions it uses),
or to a person's own account (its commands then work in any server or DM, no admin needed)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import discord
from discord.http import HTTPClient, Route

SCOPES: tuple[str, ...] = ("bot", "applications.commands")
"""`bot` joins the server; `applications.commands` lets Parley register its slash commands."""
AUTHORIZE_URL = "https://discord.com/oauth2/authorize"
USER_INSTALL = 1
"""Discord's integration type for an app installed to a user's account (0 is a server install)."""


def required_permissions(*, auto_thread: bool) -> discord.Permissions:
    """What Parley does in a channel: read it, answer (replies need the history), answer in threads,
    upload voice replies and post them as voice messages; and, with auto threads on, start public threads."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        read_message_history=True,
        attach_files=True,
        send_voice_messages=True,
        create_public_threads=auto_thread,
    )


def invite_url(application_id: str, *, auto_thread: bool) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=required_permissions(auto_thread=auto_thread), scopes=SCOPES
    )


def user_install_url(application_id: str) -> str:
    """The link that installs Parley to the clicker's own account: commands only, no bot user joins."""
    query = urlencode({"client_id": application_id, "integration_type": USER_INSTALL, "scope": "applications.commands"})
    return f"{AUTHORIZE_URL}?{query}"


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
