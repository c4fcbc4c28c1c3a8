"""Messages of several requests, built from labelled prompts: what users send, and what padding looks like.

The classifier's rows are single requests; a message of two or three of them, pooled into one vector,
is out of its distribution and read as harmful more often than any of its requests alone (round 9).
`benign_messages` joins 2-3 ordinary prompts; `padded_harmful` puts one harmful prompt among 1-2 ordinary
ones, anywhere in the message. `benchmarks/guard_eval.py` builds them from validation rows with a fixed
seed. (Training on such messages built from dev rows was measured and dropped: docs/guardrails.md, round
10.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from core.guard.training.data import Example

SEPARATORS = (" ", " ", "\n")
"""How a user runs requests together: mostly on one line, sometimes one per line."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    text: str
    harmful: bool
    members: tuple[str, ...]
    """The ids of the prompts it is made of, in order."""


def join(parts: Sequence[str], rng: random.Random) -> str:
    """The prompts as one message: each ends as a sentence (a full stop added where none ends it), so the
    input rail splits the message where the prompts meet."""
    ended = [p.strip() if p.strip()[-1:] in ".!?" else p.strip() + "." for p in parts]
    separator = rng.choice(SEPARATORS)
    return separator.join(ended)


def benign_messages(pool: Sequence[Example], count: int, rng: random.Random) -> list[Message]:
    """`count` messages of 2-3 distinct ordinary prompts drawn from `pool`."""
    out = []
    for _ in range(count):
        members = rng.sample(list(pool), rng.choice((2, 3)))
        out.append(Message(text=join([m.text for m in members], rng), harmful=False, members=_ids(members)))
    return out


def padded_harmful(
    harmful: Sequence[Example], pool: Sequence[Example], count: int, rng: random.Random
) -> list[Message]:
    """`count` messages of one harmful prompt (each used at most once while any is left) and 1-2 ordinary
    prompts from `pool`, the harmful one at a random place."""
    order = list(harmful)
    rng.shuffle(order)
    out = []
    for i in range(count):
        ask = order[i % len(order)]
        members = rng.sample(list(pool), rng.choice((1, 2)))
        members.insert(rng.randrange(len(members) + 1), ask)
        out.append(Message(text=join([m.text for m in members], rng), harmful=True, members=_ids(members)))
    return out


def _ids(members: Sequence[Example]) -> tuple[str, ...]:
    return tuple(m.id for m in members)
