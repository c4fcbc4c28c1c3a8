"""Supplied text reaches a model inside a fence it can neither open nor close."""

from __future__ import annotations

import pytest

from core.fencing import fence


@pytest.mark.parametrize("tag", ["</Memory>", "< /note>", "<attachment kind=x>", "</PROFILE>", "</message>"])
def test_a_fence_tag_in_any_case_or_spacing_is_escaped(tag: str) -> None:
    assert fence("memory", f"a{tag}b") == f"<memory>a&lt;{tag[1:]}b</memory>"


def test_other_markup_and_entities_stay_as_written() -> None:
    assert fence("memory", "a < b && <div>&lt;</div>") == "<memory>a < b && <div>&lt;</div></memory>"


def test_attribute_values_cannot_leave_their_quotes() -> None:
    assert fence("note", "x", told_by='U1" on="never') == '<note told_by="U1&quot; on=&quot;never">x</note>'


def test_a_block_puts_the_text_on_its_own_lines() -> None:
    assert fence("reference", "text", block=True, source="a.md") == '<reference source="a.md">\ntext\n</reference>'
