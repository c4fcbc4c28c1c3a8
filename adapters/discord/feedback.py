"""👍/👎 buttons under Parley's answers, stored like reactions.

One persistent view (registered once with `client.add_view`) answers every click, whichever
message it is under: the buttons' custom ids are fixed, and the clicked message tells which turn
is rated. The copy sent with an answer is stopped first, so discord.py keeps no view per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

FEEDBACK_UP = "parley:feedback:up"
FEEDBACK_DOWN = "parley:feedback:down"
FEEDBACK_SOURCE = "discord_feedback_button"
"""How a click is labelled in the feedback store (reactions are labelled with their emoji)."""
Rate = Callable[[discord.Interaction, int], Awaitable[None]]


class FeedbackButtons(discord.ui.View):
    """The two buttons; `rate(interaction, +1 | -1)` stores the click and answers it."""

    def __init__(self, rate: Rate) -> None:
        super().__init__(timeout=None)
        self.rate = rate

    @discord.ui.button(emoji="👍", style=discord.ButtonStyle.secondary, custom_id=FEEDBACK_UP)
    async def up(self, interaction: discord.Interaction, button: discord.ui.Button[FeedbackButtons]) -> None:
        await self.rate(interaction, 1)

    @discord.ui.button(emoji="👎", style=discord.ButtonStyle.secondary, custom_id=FEEDBACK_DOWN)
    async def down(self, interaction: discord.Interaction, button: discord.ui.Button[FeedbackButtons]) -> None:
        await self.rate(interaction, -1)


def buttons_for_answer(rate: Rate) -> FeedbackButtons:
    """The buttons to send with an answer: components only (clicks reach the persistent view)."""
    view = FeedbackButtons(rate)
    view.stop()
    return view


def thanks(score: int, *, stored: bool) -> str:
    if not stored:
        return "I couldn't find the answer you rated, so nothing was stored."
    return "Thanks! I noted that this answer helped." if score > 0 else (
        "Thanks, I noted that this answer did not help. Tell me what was missing."
    )
