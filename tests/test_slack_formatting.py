"""Markdown -> Slack mrkdwn, and replies split into messages Slack accepts (pure functions)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.formatting import FENCE, file_notes, render_chunks, segments, split_message, to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("# Title", "*Title*"),
        ("### Smaller heading", "*Smaller heading*"),
        ("**bold** and *italic*", "*bold* and _italic_"),
        ("~~gone~~", "~gone~"),
        ("[Parley](https://example.com/a?b=1&c=2)", "<https://example.com/a?b=1&amp;c=2|Parley>"),
        ("see <https://example.com/x>", "see <https://example.com/x>"),
        ("- one\n- two\n  - nested", "• one\n• two\n  • nested"),
        ("1. first\n2. second", "1. first\n2. second"),
        ("> quoted", "> quoted"),
        ("| a | b |\n|---|---|\n| 1 | **2** |", "*a* | *b*\n1 | *2*"),
        ("call `__init__` or `a*b*c`", "call `__init__` or `a*b*c`"),
        ("if a < b && c > d", "if a &lt; b &amp;&amp; c &gt; d"),
        ("ping <!channel> and <@U123>", "ping &lt;!channel&gt; and &lt;@U123&gt;"),
    ],
)
def test_markdown_becomes_slack_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_code_blocks_are_kept_verbatim_without_the_language_tag() -> None:
    markdown = "Run this:\n\n```python\ndef f(x):\n    return x**2 < 10  # *not italic*\n```\nDone."
    assert to_mrkdwn(markdown) == (
        "Run this:\n```\ndef f(x):\n    return x**2 &lt; 10  # *not italic*\n```\nDone."
    )


def test_an_unclosed_code_block_is_closed() -> None:
    assert to_mrkdwn("```\nprint(1)") == "```\nprint(1)\n```"


def test_segments_separate_prose_and_code() -> None:
    parts = segments("a\n```\nb\n\nc\n```\nd")
    assert [(p.code, p.text) for p in parts] == [(False, "a"), (True, "```\nb\n\nc\n```"), (False, "d")]


def test_short_text_is_one_message() -> None:
    assert split_message("hello\n\nworld") == ["hello\n\nworld"]


def test_long_text_splits_at_paragraph_boundaries() -> None:
    paragraphs = [f"paragraph {i} " + "x" * 80 for i in range(6)]
    chunks = split_message("\n\n".join(paragraphs), limit=200)
    assert chunks == ["\n\n".join(paragraphs[i : i + 2]) for i in range(0, 6, 2)]


def test_a_code_block_is_never_split_when_it_fits() -> None:
    code = "```\n" + "\n".join(f"line {i}" for i in range(20)) + "\n```"
    chunks = split_message("intro " * 20 + "\n\n" + code + "\n\nafter", limit=200)
    assert any(code in chunk for chunk in chunks)


def test_a_code_block_longer_than_the_limit_becomes_closed_blocks() -> None:
    code = "```\n" + "\n".join(f"line {i:03}" for i in range(100)) + "\n```"
    chunks = split_message(code, limit=120)
    assert len(chunks) > 1
    assert all(c.startswith("```\n") and c.endswith("\n```") and len(c) <= 120 for c in chunks)


def test_render_chunks_fit_slack_and_keep_the_code_whole() -> None:
    markdown = "\n\n".join(["# Report", "word " * 1000, "```\n" + "x = 1\n" * 100 + "```", "word " * 500])
    chunks = render_chunks(markdown)
    assert all(len(c) <= 3900 for c in chunks)
    assert any(c.count("x = 1") == 100 for c in chunks)


def test_file_notes_name_each_file() -> None:
    assert file_notes([("a.pdf", "it is too big")]) == "_I couldn't read `a.pdf`: it is too big._"
    assert file_notes([]) == ""


# -- properties ---------------------------------------------------------------------------------
prose_line = st.text(alphabet=st.sampled_from("abcdef XYZ.,!?*_#-|>[]()"), min_size=0, max_size=120)
paragraph = st.lists(prose_line, min_size=1, max_size=6).map("\n".join)
code_block = st.lists(st.text(alphabet="abc xyz=+(){};", max_size=60), max_size=12).map(
    lambda lines: "\n".join([FENCE + "py", *lines, FENCE])
)
documents = st.lists(st.one_of(paragraph, code_block), min_size=1, max_size=12).map("\n\n".join)
limits = st.integers(min_value=40, max_value=400)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def without_fences(text: str) -> str:
    return squeeze("\n".join(line for line in text.split("\n") if not line.lstrip().startswith(FENCE)))


def fence_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.lstrip().startswith(FENCE))


@given(documents, limits)
def test_p13_every_chunk_fits_the_limit(text: str, limit: int) -> None:
    assert all(0 < len(chunk) <= limit for chunk in split_message(text, limit))


@given(documents, limits)
def test_p13_no_chunk_splits_a_code_block(text: str, limit: int) -> None:
    assert all(fence_lines(chunk) % 2 == 0 for chunk in split_message(text, limit))


@given(documents, limits)
def test_p13_joined_chunks_give_the_text_back(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert without_fences("\n".join(chunks)) == without_fences(text)
    if all(len(block) <= limit for block in re.findall(r"```py\n.*?```", text, flags=re.DOTALL)):
        assert squeeze("\n".join(chunks)) == squeeze(text)


@given(documents)
def test_p13_rendered_chunks_fit_slack(text: str) -> None:
    assert all(len(chunk) <= 3900 for chunk in render_chunks(text * 8))


@pytest.mark.parametrize(("markdown", "mrkdwn"), [("``x`` y", "`x` y"), ("``x``` y", "``x``` y")])
def test_a_code_span_opens_and_closes_only_on_whole_backtick_runs(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_a_reply_of_many_backticks_converts_at_once() -> None:
    started = time.perf_counter()
    to_mrkdwn("`" * 100_000 + " x")
    assert time.perf_counter() - started < 1.0  # every backtick opened a span once: 20,000 took 6 s
