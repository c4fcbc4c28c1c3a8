"""Parley on Discord (discord.py): mentions, DMs, threads, files, voice messages, slash commands, reactions.

`build_discord(config, pipeline, pool)` returns the client; `parley discord` runs it.
"""

from adapters.discord.bot import ParleyDiscordClient, build_discord
from adapters.discord.config import DiscordConfig
from adapters.discord.invite import invite_url

__all__ = ["DiscordConfig", "ParleyDiscordClient", "build_discord", "invite_url"]
