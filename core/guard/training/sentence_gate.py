"""How suspect a sentence must be before its message's whole text counts (core/guard/sentences.py).

A message of several sentences is scored per sentence and whole; the whole, pooled over requests the
classifier never saw together, reads as harmful more often than any of them, so it counts only where one
sentence is already suspect (`message_score`'s `suspect`). That edge was the grey zone's lower edge (0.166),
a number chosen for another purpose: two ordinary requests whose sentences score 0.2-0.6 ("What's the
dosage of ibuprofen that's safe for an adult with a headache?" 0.59) were refused by their pooled vector.

Here the edge is chosen on dev rows the scoring model never saw, like the block threshold. In each
cross-validation fold, ordinary messages of 2-3 workplace requests are built from the fold's held-out
rows, and the held-out harmful rows of several sentences are taken as they are; the fold's model scores
each whole and per sentence. The edge is the one, at or above the grey zone's lower edge (where the whole
counted before), that blocks the most of those harmful rows less the share of ordinary messages it
refuses, the lowest of equals. Both sides count: an edge chosen on the ordinary messages alone (the
lowest at which the whole adds at most 1 % of them refused: 0.631 for the shipped SVM) halved their
refusals on dev (4.4 -> 2.2 %) but let 6 of the 100 harmful dev rows of several sentences through (83 ->
77 %), and on validation 1.4 points of harmful recall.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.guard.sentences import message_score, split_sentences
from core.guard.training.data import Example
from core.guard.training.messages import benign_messages

MESSAGES_PER_FOLD = 200
SEED = 20261207


@dataclass(kw_only=True)
class FoldMessages:
    """Out-of-fold decisions of dev messages (ordinary ones built, or harmful rows): each one's whole text and
    its sentences."""

    wholes: list[float] = field(default_factory=list)
    sentences: list[list[float]] = field(default_factory=list)

    def add(self, whole: np.ndarray, pieces: Sequence[np.ndarray]) -> None:
        self.wholes.extend(float(w) for w in whole)
        self.sentences.extend([float(s) for s in piece] for piece in pieces)


def fold_messages(
    held_out: Sequence[Example],
    decide: Callable[[list[str]], np.ndarray],
    prompt: Callable[[str], str],
    collected: FoldMessages,
    rng: random.Random,
) -> None:
    """Build ordinary messages from a fold's held-out workplace rows and add their decisions by the fold's
    model (`decide`, texts to SVM decisions) to `collected`. Texts go through `prompt` (masking) first, then
    split as the input rail splits them; a message that is one sentence after all is skipped."""
    pool = [e for e in held_out if e.population == "workplace"]
    if len(pool) < 3:
        return
    _score([prompt(m.text) for m in benign_messages(pool, MESSAGES_PER_FOLD, rng)], decide, collected)


def fold_harmful(
    held_out: Sequence[Example],
    decide: Callable[[list[str]], np.ndarray],
    prompt: Callable[[str], str],
    collected: FoldMessages,
) -> None:
    """Add the fold's held-out harmful rows of several sentences, scored whole and per sentence."""
    _score([prompt(e.text) for e in held_out if e.harmful], decide, collected)


def _score(texts: Sequence[str], decide: Callable[[list[str]], np.ndarray], collected: FoldMessages) -> None:
    """Score each text of several sentences whole and per sentence, in one call, into `collected`."""
    kept = [(t, pieces) for t in texts if len(pieces := split_sentences(t)) > 1]
    if not kept:
        return
    scored = decide([t for t, _ in kept] + [p for _, pieces in kept for p in pieces])
    ends = np.cumsum([len(pieces) for _, pieces in kept])[:-1]
    collected.add(scored[: len(kept)], np.split(scored[len(kept) :], ends))


def refused(wholes: np.ndarray, sentences: Sequence[np.ndarray], *, suspect: float, cut: float) -> np.ndarray:
    """Which messages the input rail refuses at `cut`, the whole counting from `suspect` (`message_score`)."""
    return np.array(
        [message_score(float(w), list(s), suspect)[0] >= cut for w, s in zip(wholes, sentences, strict=True)],
        dtype=bool,
    )


Scored = tuple[np.ndarray, Sequence[np.ndarray]]
"""Messages' whole-text scores and each one's sentence scores."""


def choose_gate(ordinary: Scored, harmful: Scored, *, cut: float, floor: float) -> float:
    """The edge at or above `floor` that blocks the most `harmful` messages less the share of `ordinary` ones
    it refuses; the lowest of equals. Candidates are `floor` and just above each sentence's score."""
    sentences = [*ordinary[1], *harmful[1]]
    candidates = sorted({floor, *(float(max(s)) + 1e-6 for s in sentences if max(s) >= floor)})

    def gain(gate: float) -> float:
        blocked = refused(*harmful, suspect=gate, cut=cut).mean()
        return float(blocked - refused(*ordinary, suspect=gate, cut=cut).mean())

    gains = [gain(gate) for gate in candidates]
    return candidates[gains.index(max(gains))]
