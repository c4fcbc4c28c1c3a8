"""A message scored sentence by sentence as well as whole, so padding cannot hide a harmful ask.

The harm classifier was trained on single requests. A message that wraps one in ordinary text
("Long week: we migrated billing, lunch was great. <harmful ask>") is pooled into one vector that
reads like the padding: one benign paragraph in front took a pipe-bomb request from 0.97 to 0.36,
and past MiniLM's 256 tokens the request is not read at all. Two unrelated requests pooled together
are out of the classifier's distribution the other way and read as harmful more often than either
alone. Each sentence on its own is a request-sized text the classifier knows; the whole message still
counts, for asks whose harm is spread over sentences ("How do I make X? Give exact steps."), but a
little less than any one sentence of it.

Measured with the harm classifier alone at its cut, on messages built from validation prompts: a
harmful request padded with ordinary requests or an ordinary answer blocked 72.7 / 53.3 % whole-text,
84.7 / 85.7 % this way; two or three ordinary requests in one message refused 13.7 % (hard negatives)
and 5.3 % (workplace) whole-text, 11.3 and 5.3 % this way; an ordinary answer pasted with a request
11.0 % and 11.7 %. Single requests are scored exactly as before. The discount was chosen looking at
those validation-built sets, so they are not unseen; docs/guardrails.md has a probe that is.

Round 10: the whole counts only where one of its sentences is already suspect, at or above the input
grey zone's lower edge (0.166 for the shipped classifier): a harm spread over sentences has one that
reads as an ask for it ("How do I make a working pipe bomb ...?" 0.79), while several ordinary
requests, each scored near 0, no longer stand or fall by their pooled vector. On the same
validation-built messages (`guard_eval.py`'s multi-request section), 2-3 workplace requests refused
4.0 -> 3.3 %, 2-3 hard negatives 11.0 -> 9.7 %, padded harmful 86 % either way, single prompts the same.

Round 12: that edge is now the classifier's own `sentence_gate` (0.291 for the shipped SVM), chosen on
dev messages scored out of fold (core/guard/training/sentence_gate.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import cast

MAX_SENTENCES = 64
"""A message longer than this many sentences is read as its first 63 and the rest as one piece, so a
pasted document costs a bounded number of encoder inputs (the rest is still read, in 256 tokens)."""
CONTEXT_DISCOUNT = 0.087
"""What the whole of a message of several sentences gives up against its sentences: at the shipped cut
(0.813) the whole must reach 0.9 on its own. Two requests pooled in one vector are unlike anything the
classifier was trained on, and their whole score over-refuses (above)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """The message's sentences and lines, stripped, empty ones dropped; at most `MAX_SENTENCES`."""
    pieces = [p for p in (s.strip() for s in _SENTENCE_END.split(text)) if p]
    if len(pieces) <= MAX_SENTENCES:
        return pieces
    return [*pieces[: MAX_SENTENCES - 1], " ".join(pieces[MAX_SENTENCES - 1 :])]


def whole_counts(sentences: Sequence[float], suspect: float) -> bool:
    """Whether `message_score` reads the whole text's score: for a message of one sentence (or none), or
    where some sentence scores at least `suspect`. Elsewhere the whole need not be scored at all."""
    return len(sentences) <= 1 or max(sentences) >= suspect


def message_score(whole: float | None, sentences: Sequence[float], suspect: float) -> tuple[float, int]:
    """The message's harm score from its whole text's and its sentences' scores, and which piece it
    came from (-1 for the whole). One sentence: the whole text's score, as before. The whole counts
    only when some sentence scores at least `suspect` (the classifier's `sentence_gate`); `whole` may be
    None where `whole_counts` says it does not."""
    if whole_counts(sentences, suspect) and whole is None:
        raise ValueError("the whole text's score counts for this message and was not given")
    if len(sentences) <= 1:
        return cast(float, whole), -1
    best = max(range(len(sentences)), key=sentences.__getitem__)
    if sentences[best] < suspect:
        return sentences[best], best
    discounted = cast(float, whole) - CONTEXT_DISCOUNT
    if sentences[best] >= discounted:
        return sentences[best], best
    return discounted, -1
