"""How the output rail's cut is chosen from model replies (core/guard/training/train_harm.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from core.guard.actions import reply_chunks
from core.guard.training.data import Example
from core.guard.training.train_harm import TARGET_REPLY_FPR, output_cuts, reply_scores


def _reply(text: str) -> Example:
    return Example(id="r", text=text, harmful=False, source="generated_replies", category="", split="dev")


def test_a_reply_scores_as_its_worst_chunk_in_the_order_given() -> None:
    long_reply = "Fine sentence here. " * 30 + "BAD sentence."
    assert len(reply_chunks(long_reply)) > 1

    def score(chunks: list[str]) -> np.ndarray:
        return np.array([0.9 if "BAD" in c else 0.1 for c in chunks])

    scores = reply_scores(score, [_reply("All fine."), _reply(long_reply), _reply("BAD.")])
    assert scores.tolist() == [0.1, 0.9, 0.9]


@given(
    st.lists(st.floats(0, 1), min_size=40, max_size=200),
    st.lists(st.floats(0, 1), min_size=40, max_size=200),
)
def test_the_output_cut_withholds_at_most_the_target_share_of_ordinary_answers(
    benign: list[float], harmful: list[float]
) -> None:
    scores = np.array(benign + harmful)
    labels = np.array([False] * len(benign) + [True] * len(harmful))
    threshold, low, high = output_cuts(scores, labels)
    assert (np.array(benign) >= threshold).mean() <= TARGET_REPLY_FPR
    assert low <= threshold <= high
