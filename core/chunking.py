"""Splitting a long reply into the messages a chat platform accepts: one pure algorithm for every adapter.

`plan_pieces` partitions the text exactly (joining the pieces' text gives it back) and `render` turns
a piece into a message: edges without blank lines, a code block the cut went through closed at the
bottom and reopened, with its language, at the top of the next message. Each cut is the best
boundary within reach — a paragraph, a line, a sentence, a word, a hard cut — and never inside a
code block that fits one message. A cut depends only on the text before it and a window of about
one message after it, so while a reply streams in, earlier pieces rarely change.

Fences follow what Slack and Discord render: a line that starts with ``` (after spaces) and holds an
odd number of them opens or closes a code block. Below `MIN_FENCED_LIMIT` no message can hold a
code block at all, so fences are left as text and only the length is kept.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

FENCE = "```"
CLOSE = "\n" + FENCE
MAX_REOPEN = 40
"""A reopened fence carries its language tag; a tag that would make the fence longer is dropped."""
MIN_FENCED_LIMIT = len(f"{FENCE}\nx{CLOSE}")
"""The shortest message that holds a code block with one character in it."""

_SENTENCE_END = re.compile(r"([.!?…][\"'”’)\]]*)[ \t]+")
_ZWJ = "\u200d"
_JOINS_PREVIOUS = frozenset(_ZWJ + "\ufe0e\ufe0f")


@dataclass(frozen=True, kw_only=True, slots=True)
class Piece:
    """A slice of the text and the fence repair its message needs."""

    text: str
    reopen: str | None = None
    """The fence line (such as "```python") to put back at the top: the cut before went through a code block."""
    close: bool = False
    """Whether the message ends inside a code block, so a closing fence goes at the bottom."""


def split_message(text: str, limit: int) -> list[str]:
    """The messages to send for `text`: each 1..limit characters, with balanced code fences when
    `limit` can hold a code block; none for blank text."""
    return [chunk for chunk in map(render, plan_pieces(text, limit)) if chunk]


def render(piece: Piece) -> str:
    """One message: the reopened fence, the piece without blank edges, and a closing fence if needed."""
    body = _body(piece)
    if not body.strip():
        return ""
    return body + CLOSE if piece.close else body


def plan_pieces(text: str, limit: int) -> list[Piece]:
    """Cut `text` into pieces whose messages fit `limit` characters; "".join(p.text) == text."""
    if limit < 1:
        raise ValueError(f"a message limit must be positive, not {limit}")
    fenced = limit >= MIN_FENCED_LIMIT
    content_end = len(text.rstrip())
    pieces: list[Piece] = []
    start = 0
    reopen: str | None = None
    while start < len(text):
        begin = _skip_newlines(text, start)
        head = len(reopen) + 1 if reopen else 0
        if content_end - begin <= limit - head:
            last = _piece(text[start:], reopen, fenced=fenced)
            if len(render(last)) <= limit:
                pieces.append(last)
                break
        budget = limit - head
        while True:
            end = _best_cut(text, begin, budget, limit=limit, inside=reopen is not None, fenced=fenced)
            piece = _piece(text[start:end], reopen, fenced=fenced)
            over = len(render(piece)) - limit
            if over <= 0 or budget == 1:
                break
            budget = max(1, budget - over)
        pieces.append(piece)
        start = end
        reopen = open_fence(_body(piece), limit) if fenced else None
    return pieces


def _best_cut(text: str, begin: int, budget: int, *, limit: int, inside: bool, fenced: bool) -> int:
    """Where to end a piece whose content starts at `begin` and may take `budget` characters (less
    a closing fence when it ends inside code) of a message of `limit`; `inside`: it starts inside a
    code block.

    Preference: a blank line outside code in the second half of the window; a line break outside
    code there; a sentence end outside code there; a line break inside a code block too long for
    one message anyway; any line break outside code (so a code block that fits one message moves
    whole to the next); a line break inside code, not right before its closing fence; a space; a
    hard cut that keeps a character and its combining marks together.
    """
    window = text[begin : begin + budget + 1]
    half = budget // 2
    coded = budget - len(CLOSE) if fenced else budget
    lines = _Window(window, inside=inside, fenced=fenced, coded=coded)
    last_outside = lines.outside[-1] if lines.outside else 0
    code_after = [p for p in lines.in_code if p > last_outside]
    block_too_long = bool(code_after and lines.outside) and not _block_fits(text, begin + last_outside, limit)
    for candidates in (
        [p for p in lines.paragraphs if p >= half],
        [p for p in lines.outside if p >= half],
        [p for p in _sentence_ends(window, lines, budget) if p >= half],
        code_after if block_too_long else [],
        lines.outside,
        _code_cuts(lines.in_code, window),
    ):
        if candidates:
            return begin + candidates[-1]
    return begin + _word_or_hard_cut(window, lines, budget, coded)


def toggles(line: str) -> bool:
    """Whether a line opens or closes a code block: it starts with ``` and holds an odd number of them."""
    return line.lstrip(" ").startswith(FENCE) and line.count(FENCE) % 2 == 1


def open_fence(text: str, limit: int | None = None) -> str | None:
    """The fence line to reopen the code block still open at the end of `text`: its language tag
    kept when the fence stays short enough for a message of `limit`, else a bare fence."""
    opener: str | None = None
    for line in text.split("\n"):
        if toggles(line):
            opener = None if opener is not None else line
    if opener is None:
        return None
    fence = FENCE + opener.lstrip(" ")[len(FENCE) :].strip().split(" ", 1)[0].replace(FENCE, "")
    longest = MAX_REOPEN if limit is None else max(len(FENCE), min(MAX_REOPEN, limit // 4))
    return fence if len(fence) <= longest else FENCE


# -- helpers -----------------------------------------------------------------------------------
class _Window:
    """One message's worth of text as lines: where each starts, whether it lies in code, and the
    line breaks a piece may end at."""

    def __init__(self, window: str, *, inside: bool, fenced: bool, coded: int) -> None:
        self.starts: list[int] = []
        self.code: list[bool] = []
        """Per line: inside a code block (a fence line counts as code)."""
        self.outside: list[int] = []
        """Cuts after a line outside code."""
        self.paragraphs: list[int] = []
        """Cuts after a blank line outside code (not the first line)."""
        self.in_code: list[int] = []
        """Cuts inside code that leave room for a closing fence, not right after the opening one."""
        code = inside
        position = 0
        parts = window.split("\n")
        for index, line in enumerate(parts):
            fence = fenced and FENCE in line and toggles(line)
            self.starts.append(position)
            self.code.append(code or fence)
            if fence:
                code = not code
            end = position + len(line)
            position = end + 1
            if index == len(parts) - 1:
                break
            if not code:
                self.outside.append(position)
                if index > 0 and not line.strip():
                    self.paragraphs.append(position)
            elif end <= coded and not fence:
                self.in_code.append(position)

    def in_code_at(self, position: int) -> bool:
        return self.code[bisect.bisect_right(self.starts, position) - 1]


def _sentence_ends(window: str, lines: _Window, budget: int) -> list[int]:
    """Cuts just after a sentence's closing punctuation and the spaces after it, in prose."""
    return [
        match.end()
        for match in _SENTENCE_END.finditer(window, 0, budget + 1)
        if match.end(1) <= budget and not lines.in_code_at(match.start())
    ]


def _code_cuts(cuts: list[int], window: str) -> list[int]:
    """Line breaks in code, less a last one right before the closing fence when another is left
    (it would leave an empty block for the next message)."""
    if len(cuts) > 1:
        newline = window.find("\n", cuts[-1])
        if toggles(window[cuts[-1] : newline if newline >= 0 else len(window)]):
            return cuts[:-1]
    return cuts


def _word_or_hard_cut(window: str, lines: _Window, budget: int, coded: int) -> int:
    """After the last space that fits, else as far as fits without parting a character from its marks."""
    room = coded if lines.code[-1] else budget
    space = window.rfind(" ", 1, room + 1)
    if space > 0:
        return space + 1
    cut = max(1, min(room, len(window)))
    while 1 < cut < len(window) and _joined(window[cut - 1], window[cut]):
        cut -= 1
    return cut


def _joined(before: str, after: str) -> bool:
    """Whether a cut between two characters would split what is drawn as one (a mark, an emoji sequence)."""
    return unicodedata.combining(after) > 0 or after in _JOINS_PREVIOUS or before == _ZWJ


def _block_fits(text: str, start: int, limit: int) -> bool:
    """Whether the code block that opens after `start` closes within `limit` characters of it."""
    stop = start + limit + 1
    lines = text[start:stop].split("\n")
    complete = lines if stop >= len(text) else lines[:-1]
    in_code = False
    for line in complete:
        if toggles(line):
            if in_code:
                return True
            in_code = True
    return False


def _skip_newlines(text: str, start: int) -> int:
    position = start
    while position < len(text) and text[position] == "\n":
        position += 1
    return position


def _piece(text: str, reopen: str | None, *, fenced: bool) -> Piece:
    body = _body(Piece(text=text, reopen=reopen))
    return Piece(text=text, reopen=reopen, close=fenced and open_fence(body) is not None)


def _body(piece: Piece) -> str:
    body = piece.text.lstrip("\n").rstrip()
    return f"{piece.reopen}\n{body}" if piece.reopen else body
