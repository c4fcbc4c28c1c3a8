"""Splitting a reply into messages that fit a limit (`core.chunking`, shared by Slack and Discord)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.chunking import CLOSE, FENCE, MIN_FENCED_LIMIT, Piece, open_fence, plan_pieces, render, split_message, toggles

CODE = "```python\nfor i in range(3):\n    print(i)\n```"


@pytest.mark.parametrize(
    ("text", "limit", "chunks"),
    [
        ("short reply", 100, ["short reply"]),
        ("\n\n  indented reply  \n\n", 100, ["  indented reply"]),
        (" \n\t\n", 100, []),
        ("one two\nthree four\n\nfive six seven", 30, ["one two\nthree four", "five six seven"]),
        ("first line here\nsecond line. And more words", 30, ["first line here", "second line. And more words"]),
        ("A first sentence. A second one that runs on", 30, ["A first sentence.", "A second one that runs on"]),
        ("The words are cut where a space is", 20, ["The words are cut", "where a space is"]),
        ("abcdefghijklmnopqrstuvwxyz", 10, ["abcdefghij", "klmnopqrst", "uvwxyz"]),
        ("Here is the loop you wanted\n" + CODE + "\nafter", 55, ["Here is the loop you wanted", CODE + "\nafter"]),
        ("e\u0301" * 6, 3, ["e\u0301", "e\u0301", "e\u0301", "e\u0301", "e\u0301", "e\u0301"]),
        ("one ``` two", 4, ["one", "```", "two"]),
    ],
    ids=[
        "fits",
        "blank-edges",
        "blank",
        "paragraph",
        "line-before-sentence",
        "sentence-before-word",
        "word",
        "hard-cut",
        "code-moves-whole",
        "combining-marks",
        "tiny-limit",
    ],
)
def test_a_reply_is_cut_at_the_best_boundary(text: str, limit: int, chunks: list[str]) -> None:
    assert split_message(text, limit) == chunks


def test_a_code_block_longer_than_a_message_is_closed_and_reopened_with_its_language() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(12)) + "\n```"
    chunks = split_message(code, 60)
    assert chunks == [
        "```python\nprint(0)\nprint(1)\nprint(2)\nprint(3)\nprint(4)\n```",
        "```python\nprint(5)\nprint(6)\nprint(7)\nprint(8)\nprint(9)\n```",
        "```python\nprint(10)\nprint(11)\n```",
    ]


def test_a_long_language_tag_is_dropped_when_it_would_crowd_the_message() -> None:
    code = "```typescript\n" + "\n".join(f"f({i});" for i in range(10)) + "\n```"
    assert all(chunk.startswith("```\n") for chunk in split_message(code, 40)[1:])


def test_a_code_block_that_cannot_fit_fills_the_message_before_it() -> None:
    code = "```\n" + "\n".join(f"line {i}" for i in range(20)) + "\n```"
    chunks = split_message("Here it is:\n" + code, 60)
    assert chunks[0].startswith("Here it is:\n```\nline 0\n")


def test_no_message_holds_an_empty_code_block() -> None:
    code = "```\n" + "\n".join(f"row {i:02}" for i in range(9)) + "\n```"
    chunks = split_message(code, 21)
    assert all(re.search(r"```\n```", chunk) is None for chunk in chunks)


def test_a_code_line_longer_than_a_message_is_cut_inside_a_repaired_block() -> None:
    chunks = split_message("```\n" + "x" * 30 + "\n```", 20)
    assert chunks == ["```\n" + "x" * 12 + CLOSE, "```\n" + "x" * 12 + CLOSE, "```\n" + "x" * 6 + CLOSE]


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_pieces("text", 0)


@pytest.mark.parametrize(
    ("text", "fence"),
    [
        ("```python\nx = 1", "```python"),
        ("```python extra words\nx = 1", "```python"),
        ("```\nx = 1\n```", None),
        ("``` inline ```\nx", None),
        ("  ```js\nlet a", "```js"),
    ],
)
def test_the_open_fence_is_the_one_a_message_must_reopen(text: str, fence: str | None) -> None:
    assert open_fence(text) == fence


# -- properties ---------------------------------------------------------------------------------
prose = st.text(alphabet=st.sampled_from("abc xyz.,!?é\u0301\n"), min_size=1, max_size=160)


def code_blocks(alphabet: str) -> st.SearchStrategy[str]:
    return st.builds(
        lambda tag, lines: "\n".join([FENCE + tag, *lines, FENCE]),
        st.sampled_from(["", "py", "javascript", "a-very-long-language-tag-for-a-fence-line"]),
        st.lists(st.text(alphabet=alphabet, max_size=70), max_size=14),
    )


odd_fragments = st.sampled_from(["```", "\n```\n", "``` inline ```", "\n\n", " ", "`", "\n  ```js\n"])
replies = st.lists(st.one_of(prose, code_blocks("abc xyz=+(){};`"), odd_fragments), max_size=14).map(
    lambda parts: "".join(part + "\n" if not part.endswith("\n") and len(part) > 3 else part for part in parts)
)
any_limit = st.integers(min_value=1, max_value=400)
fenced_limit = st.integers(min_value=MIN_FENCED_LIMIT, max_value=400)


def fences_balanced(chunk: str) -> bool:
    return sum(toggles(line) for line in chunk.split("\n")) % 2 == 0


@given(replies, any_limit)
def test_p13_every_message_fits_the_limit_and_holds_text(text: str, limit: int) -> None:
    chunks = split_message(text, limit)
    assert all(0 < len(chunk) <= limit and chunk.strip() for chunk in chunks)
    assert bool(chunks) == bool(text.strip())


@given(replies, any_limit)
def test_p13_the_pieces_give_the_text_back(text: str, limit: int) -> None:
    assert "".join(piece.text for piece in plan_pieces(text, limit)) == text


@given(replies, any_limit)
def test_p13_a_message_is_its_piece_plus_only_the_fence_repair(text: str, limit: int) -> None:
    for piece in plan_pieces(text, limit):
        chunk = render(piece)
        body = piece.text.lstrip("\n").rstrip()
        if not body.strip():
            continue
        reopened = f"{piece.reopen}\n" if piece.reopen else ""
        closed = CLOSE if piece.close else ""
        assert chunk == reopened + body + closed


@given(replies, fenced_limit)
def test_p13_code_fences_are_balanced_in_every_message(text: str, limit: int) -> None:
    assert all(fences_balanced(chunk) for chunk in split_message(text, limit))


@given(st.lists(st.one_of(prose, code_blocks("abc xyz=+(){};")), min_size=1, max_size=10).map("\n".join), fenced_limit)
def test_p13_a_code_block_that_fits_one_message_is_never_cut(text: str, limit: int) -> None:
    blocks = re.findall(r"^```.*?^```$", text, flags=re.DOTALL | re.MULTILINE)
    if all(len(block) <= limit for block in blocks):
        assert all(piece.reopen is None and not piece.close for piece in plan_pieces(text, limit))


@given(replies, replies, st.integers(min_value=MIN_FENCED_LIMIT, max_value=120))
def test_p13_earlier_messages_stay_put_while_a_reply_streams_in(text: str, more: str, limit: int) -> None:
    grown = plan_pieces(text + more, limit)
    position = 0
    for before, after in zip(plan_pieces(text, limit), grown, strict=False):
        if position + len(before.text) + 2 * limit + 2 > len(text.rstrip()):
            break
        assert before == after
        position += len(before.text)


def test_a_piece_renders_without_blank_edges() -> None:
    assert render(Piece(text="\n\nhello  \n", reopen="```py", close=True)) == "```py\nhello" + CLOSE
