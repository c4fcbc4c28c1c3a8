"""Discord message parts -> what the pipeline takes: clean text, downloaded files, notes back.

`download` is the only I/O here: attachment URLs expire, so files are fetched as the message
arrives, after a size check against the claimed size and again against the bytes received.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import discord

from core.media.text import human_bytes
from core.models import Attachment, AttachmentText

log = logging.getLogger(__name__)
_MENTION = re.compile(r"<@([!&]?)(\d+)>( ?)")


@dataclass(frozen=True, kw_only=True, slots=True)
class SkippedFile:
    """An attachment that never reached the media stage, and why (told to the person)."""

    name: str
    reason: str


def clean_text(content: str, *, parley_ids: Collection[int], names: Mapping[int, str]) -> str:
    """The message without mentions of Parley (its user or its role); people's mentions become @names."""

    def replace(match: re.Match[str]) -> str:
        kind, target = match.group(1), int(match.group(2))
        if target in parley_ids:
            return ""
        if kind != "&" and target in names:
            return f"@{names[target]}{match.group(3)}"
        return match.group(0)

    return _MENTION.sub(replace, content).strip()


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
