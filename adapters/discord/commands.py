"""Parley's slash commands: /ask, /profile show|set, /memory list|forget, /forget (with a confirmation
button), /help, and /settings show|set|unset for a channel's settings (members who can manage the channel).

The commands translate only: /ask goes through the same pipeline as a mention, /profile, /memory and
/forget call the memory package's profile, fact and forgetting functions for the person who asked, in
the server (or DMs) and channel they asked in. Everything except /ask answers ephemerally; /ask does too in a
server where Parley is only installed to the asker's account (the server never invited it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal

import discord
from discord import app_commands
from pydantic import ValidationError

from adapters.discord.chunking import DISCORD_LIMIT
from adapters.discord.config import DM_WORKSPACE
from core.audit import Actor
from core.channel_settings import ADMIN_ONLY_REFUSAL, KEYS, WORKSPACE_ADMIN_KEYS, UnknownSetting, parse
from core.memory.facts_view import fact_line, remove_fact, visible_facts
from core.memory.forget import forget_user
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.models import Platform, UserKey
from core.seams import Profile
from core.store.pool import Pool
from core.workspace import Layers, load_layers, set_override, unset_override

log = logging.getLogger(__name__)

Ask = Callable[[discord.Interaction, str, discord.Attachment | None], Awaitable[None]]
ProfileField = Literal["display_name", "language", "timezone", "answer_style", "voice_replies", "about"]
CONFIRM_TIMEOUT_S = 120.0

HELP = """**Parley** answers questions, reads files and voice messages, and remembers how you like answers.
- Mention me in a channel; reply to my answers or talk in my threads to go on without mentioning me.
- DM me any time; voice messages work in DMs, in my threads and as replies to me.
- React 👍 or 👎 to my answers to tell the team what helped.
- `/ask` asks me anything, anywhere (the answer is visible in that channel). Install me to your own \
account and `/ask`, `/profile` and `/forget` work in any server or DM, even where I am not a member.
- `/profile show` and `/profile set` manage how I answer you: name, language, time zone, short or \
detailed answers, voice replies.
- `/memory list` shows what I know about you, this channel and the server (with `history`, earlier \
versions too); `/memory forget` removes one. Say "remember for this channel: …" or "remember for the \
workspace: …" to tell me something for everyone there.
- `/forget` deletes everything I know about you here."""


def user_key(interaction: discord.Interaction) -> UserKey:
    workspace = str(interaction.guild_id) if interaction.guild_id else DM_WORKSPACE
    return UserKey(platform=Platform.DISCORD, workspace_id=workspace, user_id=str(interaction.user.id))


def describe_profile(profile: Profile) -> str:
    """The profile as a short list; unset fields say so."""
    rows = [
        ("Name", profile.display_name),
        ("Language", profile.language),
        ("Time zone", profile.timezone),
        ("Answers", profile.answer_style),
        ("Voice replies", "on" if profile.voice_replies else "off"),
        ("About you", profile.about),
    ]
    return "**Your profile here**\n" + "\n".join(
        f"- {name}: {discord.utils.escape_markdown(value) if value else '_not set_'}" for name, value in rows
    )


def validation_message(error: ValidationError) -> str:
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())


def build_tree(client: discord.Client, *, pool: Pool, ask: Ask) -> app_commands.CommandTree:
    """The command tree with all four commands; `client.setup_hook` syncs it.

    Every command works where the app is installed to a server and where a person installed it to
    their own account: in servers, in DMs with Parley and in their other DMs and group DMs."""
    tree: app_commands.CommandTree = app_commands.CommandTree(
        client,
        allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True),
    )

    @tree.command(name="ask", description="Ask Parley a question (the answer is visible in this channel).")
    @app_commands.describe(question="What you want to know", file="A file, image or voice note to read along")
    async def ask_command(
        interaction: discord.Interaction, question: str, file: discord.Attachment | None = None
    ) -> None:
        await ask(interaction, question, file)

    profile = app_commands.Group(name="profile", description="How Parley answers you here.")

    @profile.command(name="show", description="Show what Parley knows about how to answer you.")
    async def profile_show(interaction: discord.Interaction) -> None:
        shown = await get_profile(pool, user_key(interaction))
        await interaction.response.send_message(describe_profile(shown), ephemeral=True)

    @profile.command(name="set", description="Change one field of your profile (an empty value clears it).")
    @app_commands.describe(field="The field to change", value="The new value (voice_replies: on or off)")
    async def profile_set(interaction: discord.Interaction, field: ProfileField, value: str) -> None:
        try:
            changes = ProfileChanges.model_validate({field: _as_bool(value) if field == "voice_replies" else value})
        except ValidationError as exc:
            await interaction.response.send_message(f"That didn't work: {validation_message(exc)}", ephemeral=True)
            return
        stored = await update_profile(pool, user_key(interaction), changes)
        await interaction.response.send_message("Saved.\n" + describe_profile(stored), ephemeral=True)

    tree.add_command(profile)

    memory = app_commands.Group(name="memory", description="What Parley knows about you, this channel and server.")

    @memory.command(name="list", description="Show what Parley knows here (history: earlier versions too).")
    @app_commands.describe(history="Also facts that were corrected or have expired")
    async def memory_list(interaction: discord.Interaction, history: bool = False) -> None:
        now = datetime.now(UTC)
        found = await visible_facts(
            pool, user_key(interaction), channel_id=_fact_channel(interaction), history=history
        )
        lines = [f"- {discord.utils.escape_markdown(fact_line(f, now=now))}" for f in found]
        text = "\n".join(["**What I know here**", *lines]) if lines else "I don't know anything here yet."
        await interaction.response.send_message(_fit(text), ephemeral=True)

    @memory.command(name="forget", description="Remove one fact (its id is in /memory list).")
    @app_commands.describe(fact_id="The fact's id, as /memory list shows it")
    async def memory_forget(interaction: discord.Interaction, fact_id: app_commands.Range[int, 1]) -> None:
        removed = await remove_fact(
            pool, user_key(interaction), channel_id=_fact_channel(interaction), fact_id=fact_id
        )
        text = f"Done: I forgot fact {fact_id}." if removed else f"I have no fact {fact_id} you can see here."
        await interaction.response.send_message(text, ephemeral=True)

    tree.add_command(memory)

    @tree.command(name="forget", description="Delete everything Parley knows about you here.")
    async def forget_command(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            "This deletes your memories, profile, conversation history and feedback here. "
            "It cannot be undone.",
            view=ConfirmForget(pool=pool, user=user_key(interaction), asker_id=interaction.user.id),
            ephemeral=True,
        )

    tree.add_command(settings_group(pool))

    @tree.command(name="help", description="What Parley can do and how to talk to it.")
    async def help_command(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(HELP, ephemeral=True)

    return tree


def settings_group(pool: Pool) -> app_commands.Group:
    """/settings for this channel, offered to members with Manage Channels and checked again on use
    (a server can change who sees a command). Changes are audited with the member's id."""
    group = app_commands.Group(
        name="settings", description="This channel's Parley settings (Manage Channels).", guild_only=True,
        default_permissions=discord.Permissions(manage_channels=True),
    )
    keys = [app_commands.Choice(name=k, value=k) for k in KEYS]

    @group.command(name="show", description="The settings this channel and this server set.")
    async def settings_show(interaction: discord.Interaction) -> None:
        if await _refused(interaction):
            return
        layers = await load_layers(pool, user_key(interaction).workspace, str(interaction.channel_id))
        await interaction.response.send_message(describe_channel_settings(layers),
                                                ephemeral=True)

    @group.command(name="set", description="Set a value for this channel (it wins over the server's).")
    @app_commands.describe(key="The setting", value='A value: text, a number, true/false or ["tool", ...]')
    @app_commands.choices(key=keys)
    async def settings_set(interaction: discord.Interaction, key: str, value: str) -> None:
        if await _refused(interaction, key):
            return
        try:
            parsed = parse(key, value)
        except UnknownSetting as exc:
            await interaction.response.send_message(f"That didn't work: {exc}", ephemeral=True)
            return
        await set_override(pool, user_key(interaction).workspace, key, parsed, by=_member(interaction),
                           channel_id=str(interaction.channel_id))
        await interaction.response.send_message(f"Saved: `{key}` for this channel.", ephemeral=True)

    @group.command(name="unset", description="Remove this channel's value (the server's applies again).")
    @app_commands.choices(key=keys)
    async def settings_unset(interaction: discord.Interaction, key: str) -> None:
        if await _refused(interaction, key):
            return
        old = await unset_override(pool, user_key(interaction).workspace, key, by=_member(interaction),
                                   channel_id=str(interaction.channel_id))
        done = "Removed" if old is not None else "This channel did not set"
        await interaction.response.send_message(f"{done} `{key}`.", ephemeral=True)

    return group


def describe_channel_settings(layers: Layers) -> str:
    """Each setting this channel or its server sets, and which of the two it comes from."""
    lines = [
        f"- `{key}` = {discord.utils.escape_markdown(str(value))[:300]} "
        f"(from {'this channel' if layer == 'channel' else 'this server'})"
        for key, value, layer in layers.stored()
    ]
    if not lines:
        return "Nothing is set for this channel or server: Parley's defaults apply."
    return "**Settings here**\n" + "\n".join(lines)


async def _refused(interaction: discord.Interaction, key: str | None = None) -> bool:
    """Answer and return True when the member may not manage this channel, or may not change `key` in it
    (the guard's settings need Manage Server: core.channel_settings.WORKSPACE_ADMIN_KEYS)."""
    permissions = interaction.permissions
    if interaction.guild_id is None or not permissions.manage_channels:
        refusal = "Only members who can manage this channel can change Parley's settings here."
    elif key in WORKSPACE_ADMIN_KEYS and not permissions.manage_guild:
        refusal = ADMIN_ONLY_REFUSAL.format(key=key)
    else:
        return False
    await interaction.response.send_message(refusal, ephemeral=True)
    return True


def _member(interaction: discord.Interaction) -> Actor:
    return Actor(who=str(interaction.user.id), door="discord")


def _fact_channel(interaction: discord.Interaction) -> str:
    """The channel whose notes a member sees: none in DMs (channel notes stay out of them)."""
    return str(interaction.channel_id or "") if interaction.guild_id else ""


def _fit(text: str) -> str:
    """Within Discord's 2,000 characters a message."""
    return text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "…"


def _as_bool(value: str) -> str | bool:
    """'on'/'off' as well as pydantic's true/false, yes/no, 1/0."""
    return {"on": True, "off": False}.get(value.strip().lower(), value)


class ConfirmForget(discord.ui.View):
    """Two buttons under the /forget warning; only the person who asked can press them."""

    def __init__(self, *, pool: Pool, user: UserKey, asker_id: int) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_S)
        self.pool = pool
        self.user = user
        self.asker_id = asker_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.asker_id

    @discord.ui.button(label="Forget me", style=discord.ButtonStyle.danger, custom_id="parley:forget:confirm")
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmForget]) -> None:
        counts = await forget_user(self.pool, self.user)
        summary = ", ".join(f"{n} {table}" for table, n in counts.items() if n) or "nothing was stored"
        self.stop()
        await interaction.response.edit_message(
            content=f"Done: I forgot everything about you here ({summary}).", view=None
        )

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id="parley:forget:cancel")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmForget]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)
