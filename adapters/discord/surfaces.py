"""The two places a reply is written: under a message in a channel, or as an interaction's answer.

Both implement `streaming.Surface` and keep the messages they wrote, so the adapter can record
their ids (reply chains, reactions) afterwards. Every write carries `allowed_mentions` that can
ping the asker and nobody else: never @everyone, @here or a role, even if the model writes them.
"""

from __future__ import annotations

from typing import Any

import discord


def only_the_asker(asker_id: int, *, replied_user: bool) -> discord.AllowedMentions:
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(id=asker_id)], replied_user=replied_user
    )


NOBODY = discord.AllowedMentions.none()
"""The client-wide default: anything not written through a surface pings no one."""


def _or_missing(view: discord.ui.View | None) -> Any:
    """discord.py's "leave the components alone": its `None` would clear them (or, for a follow-up, be refused)."""
    return discord.utils.MISSING if view is None else view


class ChannelSurface:
    """Messages in a channel or thread; the first one replies to the person's message, if given."""

    def __init__(
        self, channel: discord.abc.Messageable, *, channel_id: int, reply_to: discord.Message | None, asker_id: int
    ) -> None:
        self.channel = channel
        self.channel_id = channel_id
        self.reply_to = reply_to
        self.mentions = only_the_asker(asker_id, replied_user=True)
        self.messages: list[discord.Message] = []
        self.raw: list[str] = []
        """Ids of messages posted around discord.py's models (voice messages), after the others."""

    async def send(self, index: int, content: str, view: discord.ui.View | None = None) -> None:
        if index == 0 and self.reply_to is not None:
            sent = await self.reply_to.reply(
                content, mention_author=True, allowed_mentions=self.mentions, view=_or_missing(view)
            )
        else:
            sent = await self.channel.send(content, allowed_mentions=self.mentions, view=_or_missing(view))
        self.messages.append(sent)

    async def edit(self, index: int, content: str, view: discord.ui.View | None = None) -> None:
        self.messages[index] = await self.messages[index].edit(
            content=content, allowed_mentions=self.mentions, view=_or_missing(view)
        )

    async def delete(self, index: int) -> None:
        await self.messages.pop(index).delete()

    async def add_buttons(self, view: discord.ui.View) -> None:
        """Put `view`'s components under the last message of the answer, when its text needed no write."""
        self.messages[-1] = await self.messages[-1].edit(view=view)

    async def upload(self, file: discord.File) -> None:
        self.messages.append(await self.channel.send(file=file, allowed_mentions=self.mentions))

    def add_sent(self, message_id: str) -> None:
        self.raw.append(message_id)

    def sent(self) -> list[tuple[str, str]]:
        """(message id, channel id) of every message on screen, first first."""
        return [(str(m.id), str(m.channel.id)) for m in self.messages] + [(m, str(self.channel_id)) for m in self.raw]


class InteractionSurface:
    """A deferred slash command: the first message is the original response, the rest follow-ups."""

    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool = False) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral
        """Follow-ups are private like the deferred response (the app is only user-installed here)."""
        self.mentions = only_the_asker(interaction.user.id, replied_user=False)
        self.messages: list[discord.InteractionMessage | discord.WebhookMessage] = []

    async def send(self, index: int, content: str, view: discord.ui.View | None = None) -> None:
        if index == 0:
            sent: discord.InteractionMessage | discord.WebhookMessage = (
                await self.interaction.edit_original_response(
                    content=content, allowed_mentions=self.mentions, view=_or_missing(view)
                )
            )
        else:
            sent = await self.interaction.followup.send(
                content, wait=True, allowed_mentions=self.mentions, ephemeral=self.ephemeral, view=_or_missing(view)
            )
        self.messages.append(sent)

    async def add_buttons(self, view: discord.ui.View) -> None:
        """Put `view`'s components under the last message of the answer, when its text needed no write."""
        if len(self.messages) == 1:
            self.messages[0] = await self.interaction.edit_original_response(view=view)
        else:
            self.messages[-1] = await self.messages[-1].edit(view=view)

    async def edit(self, index: int, content: str, view: discord.ui.View | None = None) -> None:
        if index == 0:
            self.messages[0] = await self.interaction.edit_original_response(
                content=content, allowed_mentions=self.mentions, view=_or_missing(view)
            )
        else:
            self.messages[index] = await self.messages[index].edit(
                content=content, allowed_mentions=self.mentions, view=_or_missing(view)
            )

    async def delete(self, index: int) -> None:
        await self.messages.pop(index).delete()

    async def upload(self, file: discord.File) -> None:
        self.messages.append(
            await self.interaction.followup.send(
                file=file, wait=True, allowed_mentions=self.mentions, ephemeral=self.ephemeral
            )
        )

    def sent(self) -> list[tuple[str, str]]:
        """(message id, channel id) of every message on screen, first first."""
        return [(str(m.id), str(m.channel.id)) for m in self.messages]
