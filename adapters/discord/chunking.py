"""Discord's measure for splitting a reply: messages of at most 2,000 characters.

The splitting itself is `core.chunking`'s, shared with Slack: cuts at the best boundary, never inside
a code block that fits one message, a longer block closed and reopened with its language.
"""

from __future__ import annotations

from core import chunking

DISCORD_LIMIT = 2000


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """The messages to send for `text`: each 1..limit characters and with balanced code fences."""
    return chunking.split_message(text, limit)
