"""A refusal detector that needs no model: does a reply decline the request?

Refusals lead with the refusal ("Sorry, I can't help with that ..."), so only the opening of a reply
is read; a long helpful answer that later says "I can't guarantee this works" is not a refusal.
The phrases are the ones assistants (and Parley's own rails) use to decline; each names the act
declined (help, assist, provide, ...) so that "I can't believe how fast this is" stays an answer.
"""

from __future__ import annotations

import re

OPENING_CHARS = 240
"""How much of a reply is read: the first sentence or two."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_NEGATION = (
    r"i (?:can't|cant|cannot|can not|won't|wont|will not|shouldn't|should not|must decline to|have to decline to)"
    r"|i(?:'m| am) (?:not able to|unable to|not going to)"
)
_ACTS = (
    r"(?:help|assist|provide|give|share|support|do that|do this|comply|fulfil+|create|write|generate|answer|"
    r"explain how|engage|participate|continue|offer|be of help|go along)"
)
_PATTERNS = (
    rf"\b(?:{_NEGATION}) (?:\w+ ){{0,3}}{_ACTS}\b",
    r"\bi (?:must|have to|need to) (?:respectfully |politely )?decline\b",
    r"\bi(?:'m| am) (?:sorry|afraid),? but (?:i|that)\b",
    r"\b(?:i|we) (?:don't|do not) (?:help|assist|provide) with\b",
    r"\bthat(?:'s| is) (?:not something|something) i (?:can't|cannot|won't|will not|am not able to)\b",
    r"\bthat(?:'s| is) not something i (?:can|will|am able to) (?:help|assist|do)\b",
    r"\b(?:against|violates?) my (?:guidelines|principles|policies|values)\b",
    r"\bi(?:'m| am) not (?:comfortable|willing) (?:helping|providing|assisting|with)\b",
    r"\bi can't help with that one\b",
    r"\bsorry, i can't\b",
)
_REFUSAL = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def is_refusal(text: str) -> bool:
    """True when the opening of `text` declines the request."""
    opening = " ".join(text.translate(_APOSTROPHES).split())[:OPENING_CHARS]
    return bool(_REFUSAL.search(opening))
