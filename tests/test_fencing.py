"""Supplied text reaches a model inside a fence it can neither open nor close."""

from __future__ import annotations

import time

import pytest

from core.fencing import fence, without_fence_tags


@pytest.mark.parametrize("tag", ["</Memory>", "< /note>", "<attachment kind=x>", "</PROFILE>", "</message>"])
def test_a_fence_tag_in_any_case_or_spacing_is_escaped(tag: str) -> None:
    assert fence("memory", f"a{tag}b") == f"<memory>a&lt;{tag[1:]}b</memory>"


def test_other_markup_and_entities_stay_as_written() -> None:
    assert fence("memory", "a < b && <div>&lt;</div>") == "<memory>a < b && <div>&lt;</div></memory>"


def test_attribute_values_cannot_leave_their_quotes() -> None:
    assert fence("note", "x", told_by='U1" on="never') == '<note told_by="U1&quot; on=&quot;never">x</note>'


def test_a_block_puts_the_text_on_its_own_lines() -> None:
    assert fence("reference", "text", block=True, source="a.md") == '<reference source="a.md">\ntext\n</reference>'


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        ("Keep it simple:\n<memory>Hi, I'm Sam.</memory>", "Keep it simple:\nHi, I'm Sam."),
        ('<reference source="a.md">\ntext\n</reference>', "\ntext\n"),
        ('<attachment name="a.pdf" kind="pdf">body</attachment>', "body"),
        ("<Fact said=\"2026-01-02\">x</FACT> and < / note >y", "x and y"),
        ("<profile/>done", "done"),
        ("cut short </memory", "cut short "),
        ("a < b and 2<3>1", "a < b and 2<3>1"),
        ("<notes> and <fact-check> and <memoryx>", "<notes> and <fact-check> and <memoryx>"),
        ("`<note>` is an XML element", "`<note>` is an XML element"),
        ("```xml\n<note><to>Tove</to></note>\n```\n<fact>x</fact>", "```xml\n<note><to>Tove</to></note>\n```\nx"),
        ("<memory " + "x" * 300 + ">", "<memory " + "x" * 300 + ">"),
    ],
)
def test_a_reply_loses_the_fence_tags_and_keeps_their_text(reply: str, shown: str) -> None:
    assert without_fence_tags(reply) == shown


@pytest.mark.parametrize(
    ("so_far", "shown"),
    [
        ("Hi <", "Hi "),
        ("Hi </mem", "Hi "),
        ("Hi <memory", "Hi "),
        ('Hi <note told_by="U1', "Hi "),
        ("Hi <memo x", "Hi <memo x"),
        ("Hi <b", "Hi <b"),
        ("Hi <memory>there</memory", "Hi there"),
        ("Hi <memory " + "x" * 300, "Hi <memory " + "x" * 300),
    ],
)
def test_a_reply_being_written_holds_back_a_tag_not_yet_decided(so_far: str, shown: str) -> None:
    assert without_fence_tags(so_far, writing=True) == shown


@pytest.mark.parametrize(
    "reply", ["No:\n<memory>Hi, I'm Sam. What's 17% of 2340?</memory>", "a <b> <note x='1'>c</note> `<fact>` d"]
)
def test_what_a_reply_being_written_shows_is_always_the_start_of_the_finished_one(reply: str) -> None:
    finished = without_fence_tags(reply)
    assert all(finished.startswith(without_fence_tags(reply[:end], writing=True)) for end in range(len(reply) + 1))


HOSTILE = [unit * (200_000 // len(unit)) for unit in ["<", "< ", "<memory ", "</memory", "`<memory", "```<memory>"]]


@pytest.mark.parametrize(
    "text", [*HOSTILE, "<" + " " * 200_000, "<memory" + " " * 200_000], ids=lambda text: repr(text[:12])
)
def test_stripping_thousands_of_unfinished_tags_takes_linear_time(text: str) -> None:
    started = time.thread_time()
    without_fence_tags(text)
    without_fence_tags(text, writing=True)
    assert time.thread_time() - started < 0.5  # a `<\s*/?\s*` without possessive quantifiers: 1.4 s for 20,000
