"""Reading a model's answer to NeMo's self-check question ("Should the message be blocked (Yes or No)?").

NeMo's own parser reads any answer that does not start with yes, no, safe or unsafe as "block", so a
chatty model ("The user is asking how to rotate logs, which is fine.") would refuse ordinary grey-zone
messages. Parley's parser answers only when the model did: a leading "Yes"/"unsafe" blocks, "No"/"safe"
allows, and anything else raises `NoVerdict`, which the self-check action turns into "no verdict" (the
offline verdict stands, and the miss is logged).
"""

from __future__ import annotations

import re

PARSER_NAME = "parley_self_check"
"""The name the self-check prompts in config/llm.yml give as their `output_parser`."""

_WORD = re.compile(r"[a-z]+")
_PREAMBLE = frozenset({"answer", "verdict", "final"})
"""Words a model may put before its yes or no ("Answer: No")."""
_ALLOW = frozenset({"no", "safe"})
_BLOCK = frozenset({"yes", "unsafe"})
_LOOK_AT = 80
"""Characters read from the start of an answer: the verdict comes first or not at all."""


class NoVerdict(ValueError):
    """The model answered the self-check question without a yes or no."""


def self_check_verdict(response: str) -> list[bool]:
    """NeMo's output-parser contract: `[True]` when the text may pass, `[False]` when it must be blocked."""
    words = [w for w in _WORD.findall(response[:_LOOK_AT].lower()) if w not in _PREAMBLE]
    first = words[0] if words else ""
    if first in _ALLOW:
        return [True]
    if first in _BLOCK:
        return [False]
    raise NoVerdict(f"the model's self-check answer starts with neither yes nor no ({len(response)} characters)")
