"""How suspect a sentence must be before its message's whole text counts (core/guard/sentences.py).

A message of several sentences is scored per sentence and whole; the whole, pooled over requests the
classifier never saw together, reads as harmful more often than any of them, so it counts only where one
sentence is already suspect (`message_score`'s `suspect`). That edge was the grey zone's lower edge (0.166),
a number chosen for another purpose: two ordinary requests whose sentences score 0.2-0.6 ("What's the
dosage of ibuprofen that's safe for an adult with a headache?" 0.59) were refused by their pooled vector.

Here the edge is chosen like the block threshold: on dev rows the scoring model never saw. In each
cross-validation fold, ordinary messages of 2-3 workplace requests are built from the fold's held-out
rows and scored by the fold's model, whole and per sentence; the edge is the lowest at which the whole
text adds at most `TARGET_EXTRA_FPR` refused messages over those a sentence alone refuses, and never below
the grey zone's lower edge (where the whole counted before).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.guard.sentences import message_score, split_sentences
from core.guard.training.data import Example
from core.guard.training.messages import benign_messages

TARGET_EXTRA_FPR = 0.01
"""What the whole text may add to the ordinary messages refused: a single request's own budget
(train_harm's TARGET_WORKPLACE_FPR)."""
MESSAGES_PER_FOLD = 200
SEED = 20261207


@dataclass(kw_only=True)
class FoldMessages:
    """Out-of-fold decisions of ordinary dev messages: each message's whole text and its sentences."""

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
    texts = [prompt(m.text) for m in benign_messages(pool, MESSAGES_PER_FOLD, rng)]
    split = [split_sentences(t) for t in texts]
    kept = [(t, pieces) for t, pieces in zip(texts, split, strict=True) if len(pieces) > 1]
    flat = [t for t, _ in kept] + [p for _, pieces in kept for p in pieces]
    scored = decide(flat)
    wholes, rest = scored[: len(kept)], scored[len(kept) :]
    per_message = []
    for _, pieces in kept:
        per_message.append(rest[: len(pieces)])
        rest = rest[len(pieces) :]
    collected.add(wholes, per_message)


def refused(wholes: np.ndarray, sentences: Sequence[np.ndarray], *, suspect: float, cut: float) -> np.ndarray:
    """Which messages the input rail refuses at `cut`, the whole counting from `suspect` (`message_score`)."""
    return np.array(
        [message_score(float(w), list(s), suspect)[0] >= cut for w, s in zip(wholes, sentences, strict=True)],
        dtype=bool,
    )


def choose_gate(wholes: np.ndarray, sentences: Sequence[np.ndarray], *, cut: float, floor: float) -> float:
    """The lowest `suspect` at or above `floor` at which the whole text adds at most `TARGET_EXTRA_FPR` of the
    messages refused over those a sentence alone refuses (above every sentence, the whole never counts)."""
    worst = np.array([max(s) for s in sentences])
    alone = worst >= cut
    candidates = sorted({floor, *(float(w) + 1e-6 for w in worst if w >= floor)})

    def extra(gate: float) -> float:
        return float((refused(wholes, sentences, suspect=gate, cut=cut) & ~alone).mean())

    # The last candidate lies above every sentence, where the whole never counts and adds nothing.
    return next(gate for gate in candidates if extra(gate) <= TARGET_EXTRA_FPR)
