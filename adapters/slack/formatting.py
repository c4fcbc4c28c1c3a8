"""Markdown from the model -> Slack mrkdwn, and long replies -> messages Slack accepts.

Pure functions. Slack mrkdwn is not Markdown: `markdown-to-mrkdwn` converts the prose; code blocks
and inline code are kept apart from it (its regexes would turn `__init__` into bold), and `&`, `<`,
`>` are escaped so a model can never write a Slack control sequence such as `<!channel>`.
Text over about 4,000 characters fails with `msg_too_long`, so replies are split into chunks of at
most `SLACK_TEXT_LIMIT` by the splitting Discord uses too (`core.chunking`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_to_mrkdwn import SlackMarkdownConverter

from core import chunking
from core.chunking import FENCE

SLACK_TEXT_LIMIT = 3900
_FENCE_LINE = re.compile(r"^ {0,3}```")
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)([^`\n]+?)\1(?!`)")
"""A code span: a whole run of backticks, text, the same run. Only a run's first backtick may open one, so a long
run costs one pass, not one per backtick (quadratic: a reply of 20,000 backticks took 6 s of the event loop)."""
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")
_AUTOLINK = re.compile(r"&lt;((?:https?|mailto):[^\s]+?)&gt;")
_QUOTE_PREFIX = re.compile(r"^\s*(?:> ?)+")


@dataclass(frozen=True, kw_only=True, slots=True)
class Segment:
    """A run of prose, or one fenced code block with its fence lines."""

    text: str
    code: bool


def to_mrkdwn(markdown: str) -> str:
    """Slack mrkdwn for a Markdown text: headings bold, links `<url|text>`, lists with bullets,
    tables as rows, code blocks kept verbatim (language tag dropped, always closed)."""
    parts = [_code_mrkdwn(s.text) if s.code else _prose_mrkdwn(s.text) for s in segments(markdown)]
    return "\n".join(p for p in parts if p.strip())


def render_chunks(markdown: str, limit: int = SLACK_TEXT_LIMIT) -> list[str]:
    """The messages that carry one reply: converted, then split to fit Slack."""
    return split_message(to_mrkdwn(markdown), limit)


def split_message(text: str, limit: int = SLACK_TEXT_LIMIT) -> list[str]:
    """Messages of at most `limit` characters of mrkdwn, cut at the best boundary and never inside
    a code block that fits one message (`core.chunking`, shared with Discord)."""
    return chunking.split_message(text, limit)


def file_notes(problems: Sequence[tuple[str, str]]) -> str:
    """Markdown naming each file Parley could not read, and why ("" when there is none)."""
    return "\n".join(f"_I couldn't read `{name}`: {reason}._" for name, reason in problems)


def segments(markdown: str) -> list[Segment]:
    """Split Markdown into prose and fenced code blocks (an unclosed fence runs to the end)."""
    out: list[Segment] = []
    prose: list[str] = []
    code: list[str] | None = None
    for line in markdown.split("\n"):
        if code is not None:
            code.append(line)
            if _FENCE_LINE.match(line) and line.strip() == FENCE:
                out.append(Segment(text="\n".join(code), code=True))
                code = None
        elif _FENCE_LINE.match(line):
            if prose:
                out.append(Segment(text="\n".join(prose), code=False))
                prose = []
            code = [line]
        else:
            prose.append(line)
    if code is not None:
        out.append(Segment(text="\n".join(code), code=True))
    if prose:
        out.append(Segment(text="\n".join(prose), code=False))
    return out


def escape(text: str) -> str:
    """Slack's three control characters as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- helpers -----------------------------------------------------------------------------------
def _code_mrkdwn(block: str) -> str:
    lines = block.split("\n")
    body = lines[1:]
    if body and body[-1].strip() == FENCE:
        body = body[:-1]
    return "\n".join([FENCE, *(escape(line) for line in body), FENCE])


def _prose_mrkdwn(text: str) -> str:
    spans: list[str] = []

    def hold(match: re.Match[str]) -> str:
        spans.append(match.group(2))
        return f"\ue000{len(spans) - 1}\ue001"

    held = _INLINE_CODE.sub(hold, text)
    escaped = _AUTOLINK.sub(r"<\1>", "\n".join(_escape_line(line) for line in held.split("\n")))
    converted = SlackMarkdownConverter().convert(escaped)
    return _PLACEHOLDER.sub(lambda m: f"`{escape(spans[int(m.group(1))])}`", converted)


def _escape_line(line: str) -> str:
    """Escape a prose line, keeping a block quote marker at its start."""
    quote = _QUOTE_PREFIX.match(line)
    head = quote.group(0) if quote else ""
    return head + escape(line[len(head):])
