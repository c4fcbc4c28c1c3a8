"""Discord message parts -> what the pipeline takes: clean text, downloaded files, notes back.

`download` is the only I/O here: attachment URLs expire, so files are fetched as the message
arrives, after a size check against the claimed size and again against the bytes received.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import discord

from core.media.text import human_bytes
from core.models import Attachment, AttachmentText

log = logging.getLogger(__name__)
_USER_MENTION = re.compile(r"<@!?(\d+)>( ?)")


@dataclass(frozen=True, kw_only=True, slots=True)
class SkippedFile:
    """An attachment that never reached the media step, and why (told to the person)."""

    name: str
    reason: str


def clean_text(content: str, *, parley_id: int, names: Mapping[int, str]) -> str:
    """The message without Parley's own mention; other people's mentions become @names."""

    def replace(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        if user_id == parley_id:
            return ""
        return f"@{names[user_id]}{match.group(2)}" if user_id in names else match.group(0)

    return _USER_MENTION.sub(replace, content).strip()


def with_quote(text: str, *, author: str, quoted: str) -> str:
    """The message with the one it replies to quoted below it (someone else's words, for context)."""
    if not quoted.strip():
        return text
    lines = "\n".join(f"> {line}" for line in quoted.strip().splitlines())
    return f"{text}\n\n(replying to {author}:)\n{lines}"


def notes(skipped: Sequence[SkippedFile], read: Sequence[AttachmentText]) -> str:
    """Small print under a reply naming every file Parley could not read."""
    problems = [(s.name, s.reason) for s in skipped] + [(a.name, a.error) for a in read if a.error]
    return "\n".join(f"-# ⚠️ {discord.utils.escape_markdown(name)}: {reason}" for name, reason in problems)


def is_voice_message(message: discord.Message) -> bool:
    """Discord's voice messages: flag 1<<13 and exactly one audio file."""
    return message.flags.voice and len(message.attachments) == 1


async def download(
    attachments: Sequence[discord.Attachment], *, max_bytes: int
) -> tuple[tuple[Attachment, ...], tuple[SkippedFile, ...]]:
    """Fetch every attachment within the size limit, all at once; the rest are skipped with a reason."""
    results = await asyncio.gather(*(_fetch(a, max_bytes) for a in attachments))
    files = tuple(r for r in results if isinstance(r, Attachment))
    skipped = tuple(r for r in results if isinstance(r, SkippedFile))
    return files, skipped


async def _fetch(attachment: discord.Attachment, max_bytes: int) -> Attachment | SkippedFile:
    too_large = f"too large ({{}}; the limit is {human_bytes(max_bytes)}), not read"
    if attachment.size > max_bytes:
        return SkippedFile(name=attachment.filename, reason=too_large.format(human_bytes(attachment.size)))
    try:
        data = await attachment.read()
    except (discord.HTTPException, OSError) as exc:
        log.warning("attachment download failed: %s", type(exc).__name__)
        return SkippedFile(name=attachment.filename, reason="could not be downloaded (the link may have expired)")
    if len(data) > max_bytes:
        return SkippedFile(name=attachment.filename, reason=too_large.format(human_bytes(len(data))))
    return Attachment(name=attachment.filename, data=data, content_type=attachment.content_type)
