"""Offline text-to-speech: espeak-ng speaks WAV, ffmpeg encodes it for chat apps.

The text goes in on stdin, never as an argument, so a reply starting with '-' is spoken, not parsed.
"""

from __future__ import annotations

from core.media.audio import encode_speech
from core.media.proc import run_tool

WORDS_PER_MINUTE = 165


async def espeak(text: str, *, voice: str, fmt: str, timeout_s: float) -> bytes:
    """Ogg/Opus or MP3 speech of `text`. Raises ToolFailed, FileNotFoundError or TimeoutError."""
    wav = await run_tool(
        ["espeak-ng", "-v", voice, "-s", str(WORDS_PER_MINUTE), "--stdout", "--stdin"],
        stdin=text.encode("utf-8"),
        timeout_s=timeout_s,
    )
    return await encode_speech(wav, fmt=fmt, timeout_s=timeout_s)
