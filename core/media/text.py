"""Pure text helpers of the media stage: sizes and durations for messages, trimming, speakable text."""

from __future__ import annotations

import re

_TRIM_BACKTRACK = 0.2
"""Trimming may move back this share of the budget to end on whitespace instead of mid-word."""


def human_bytes(n: int | float) -> str:
    """'25.3 MB', '20 MB', '1.5 kB', '12 bytes' (decimal units, as operators write limits)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{_one_decimal(n / size)} {unit}"
    return f"{int(n)} byte" + ("" if int(n) == 1 else "s")


def human_duration(seconds: float) -> str:
    """'10 minutes', '1 minute', '90 seconds', '2.5 seconds'."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute" + ("" if minutes == 1 else "s")
    shown = _one_decimal(seconds)
    return f"{shown} second" + ("" if shown == "1" else "s")


def _one_decimal(value: float) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def trim_note(omitted: int) -> str:
    """The line that replaces what a budget cut off, so the model knows the text is incomplete."""
    return f"[... trimmed: {omitted:,} more characters not shown]"


def trim_text(text: str, budget: int) -> str:
    """Keep at most `budget` characters of `text` (ending on whitespace when one is near), then a note.

    The kept part is always a prefix of `text`; the note counts every character left out.
    """
    if len(text) <= budget:
        return text
    kept = text[:budget]
    cut = max(kept.rfind(" "), kept.rfind("\n"))
    if cut >= budget * (1 - _TRIM_BACKTRACK):
        kept = kept[:cut]
    kept = kept.rstrip()
    return f"{kept}\n{trim_note(len(text) - len(kept))}" if kept else trim_note(len(text))


_FENCE = re.compile(r"```.*?(```|\Z)", re.DOTALL)
# Each pattern's runs stop at the character that starts another match ('[', '(', '<') and at whitespace, so
# a reply of thousands of unclosed links or tags is read in linear time, not one scan to its end per opener.
_IMAGE = re.compile(r"!\[([^\[\]]*)\]\([^()\s]*\)")
_LINK = re.compile(r"\[([^\[\]]+)\]\([^()\s]*\)")
_URL = re.compile(r"https?://\S+")
_TAG = re.compile(r"<[^<>\s]*>")
_LINE_MARK = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|__|~~|\*|`)")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)_([^_\n]+)_(?!\w)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t]+")
_SPACED_NEWLINE = re.compile(r"[ \t]*\n[ \t]*")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_SENTENCE_END = re.compile(r"[.!?…](?=\s)|\n")


def speakable(text: str) -> str:
    """Markdown reply -> what a voice should read: no code, no URLs, no markup characters."""
    text = _FENCE.sub(" (code omitted) ", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("a link", text)
    text = _TAG.sub("", text)
    text = _LINE_MARK.sub("", text)
    text = _UNDERSCORE_EMPHASIS.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text)
    text = _SPACED_NEWLINE.sub("\n", text)
    text = _BLANK_LINES.sub("\n", text)
    return text.strip()


def cut_for_speech(text: str, budget: int) -> str:
    """At most `budget` characters, ending at a sentence end (else a word end) when one is in reach."""
    if len(text) <= budget:
        return text
    head = text[: budget + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head) if m.end() <= budget]
    if ends and ends[-1] >= budget // 3:
        return head[: ends[-1]].strip()
    space = head.rfind(" ", 0, budget + 1)
    return (head[:space] if space > 0 else head[:budget]).strip()
