"""Splitting a reply into Discord messages: at most 2,000 characters each, never cut inside a code block.

Pure functions of the text. `plan_pieces` partitions the text exactly (joining the pieces gives it
back); `render` turns a piece into a message, closing a code block the cut went through and
reopening it, with its language, at the top of the next message. A piece's boundaries depend only
on the text before them and a window after them, so while a reply streams in, pieces before the
last one rarely change (the streamer still re-plans and edits when one does).
"""

from __future__ import annotations

from dataclasses import dataclass

DISCORD_LIMIT = 2000
FENCE = "```"
CLOSE = "\n" + FENCE
MAX_REOPEN = 40
"""A reopened fence carries its language tag; longer info strings are cut to this."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Piece:
    """A slice of the text and the code block it starts inside (if any)."""

    text: str
    reopen: str | None = None
    """The fence line (such as "```python") to put back at the top: the cut went through a code block."""


def split_message(text: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """The messages to send for `text`: each 1..limit characters and with balanced code fences."""
    return [chunk for chunk in (render(piece) for piece in plan_pieces(text, limit)) if chunk]


def render(piece: Piece) -> str:
    """One message: the reopened fence, the piece without blank edges, and a closing fence if needed."""
    body = piece.text.lstrip("\n").rstrip()
    if not body.strip():
        return ""
    chunk = f"{piece.reopen}\n{body}" if piece.reopen else body
    return chunk + CLOSE if open_fence(chunk) else chunk


def plan_pieces(text: str, limit: int = DISCORD_LIMIT) -> list[Piece]:
    """Cut `text` into pieces whose rendered messages fit `limit`; "".join(p.text) == text."""
    if limit < 2 * (MAX_REOPEN + len(CLOSE)) + 2:
        raise ValueError(f"limit {limit} is too small to hold a reopened code block")
    pieces: list[Piece] = []
    rest = text
    reopen: str | None = None
    while rest:
        last = Piece(text=rest, reopen=reopen)
        if len(render(last)) <= limit:
            pieces.append(last)
            break
        head = f"{reopen}\n" if reopen else ""
        cut = best_cut(rest, limit - len(head) - len(CLOSE), inside=reopen is not None)
        piece = Piece(text=rest[:cut], reopen=reopen)
        pieces.append(piece)
        rest = rest[cut:]
        reopen = open_fence(render_body(piece))
    return pieces


def render_body(piece: Piece) -> str:
    """The piece as `render` lays it out, before a closing fence is added."""
    body = piece.text.lstrip("\n").rstrip()
    return f"{piece.reopen}\n{body}" if piece.reopen else body


def best_cut(rest: str, budget: int, *, inside: bool) -> int:
    """Where to end a piece of at most `budget` characters of `rest` (which starts inside a code
    block when `inside`).

    Preference: a blank line or line break outside code in the second half of the window; a line
    break inside a code block that is too long for one message anyway; any line break outside
    code (so a code block that fits one message moves whole to the next); a line break inside
    code (the fence is closed and reopened); a space; a hard cut.
    """
    window = rest[:budget]
    half = len(window) // 2
    outside: list[int] = []
    inside_code: list[int] = []
    paragraphs: list[int] = []
    in_code = inside
    position = 0
    lines = window.split("\n")
    for index, line in enumerate(lines[:-1]):
        position += len(line) + 1
        if toggles(line):
            in_code = not in_code
        (inside_code if in_code else outside).append(position)
        if not in_code and not line.strip() and index > 0:
            paragraphs.append(position)
    last_outside = outside[-1] if outside else 0
    code_after = [p for p in inside_code if p > last_outside]
    block_too_long = bool(code_after) and not _block_fits(rest, last_outside, budget)
    for candidates in (
        [p for p in paragraphs if p >= half],
        [p for p in outside if p >= half],
        code_after if block_too_long else [],
        outside,
        inside_code,
    ):
        if candidates:
            return candidates[-1]
    space = window.rfind(" ", 1)
    return space + 1 if space > 0 else len(window)


def _block_fits(rest: str, start: int, budget: int) -> bool:
    """Whether the code block that opens after `start` closes within `budget` characters of it."""
    in_code = False
    position = start
    for line in rest[start:].split("\n"):
        position += len(line) + 1
        if position - start > budget:
            return False
        if toggles(line):
            if in_code:
                return True
            in_code = True
    return False


def toggles(line: str) -> bool:
    """Whether a line opens or closes a code block: it starts with ``` and holds an odd number of them."""
    return line.lstrip(" ").startswith(FENCE) and line.count(FENCE) % 2 == 1


def open_fence(text: str) -> str | None:
    """The fence line of the code block still open at the end of `text`, cut to its language tag."""
    opener: str | None = None
    for line in text.split("\n"):
        if toggles(line):
            opener = None if opener is not None else _fence_line(line)
    return opener


def _fence_line(line: str) -> str:
    info = line.lstrip(" ")[len(FENCE) :].strip().split(" ", 1)[0].replace(FENCE, "")
    return (FENCE + info)[:MAX_REOPEN]
