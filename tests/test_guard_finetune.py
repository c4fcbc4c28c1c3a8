"""The pure pieces of the fine-tuning experiment (core/guard/training/finetune_harm.py)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.guard.training.data import Example
from core.guard.training.finetune_harm import block_cut, pad
from core.guard.training.train_harm import TARGET_WORKPLACE_FPR, TARGET_XSTEST_FPR


def _example(source: str, harmful: bool) -> Example:
    return Example(id="x", text="t", harmful=harmful, source=source, category="", split="dev")


def test_padding_keeps_each_texts_tokens_and_marks_the_rest() -> None:
    short, long = torch.ones(2, 4), torch.full((5, 4), 2.0)
    x, mask = pad([short, long])
    assert x.shape == (2, 5, 4)
    assert mask.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert torch.equal(x[0, :2], short) and x[0, 2:].abs().sum() == 0
    assert torch.equal(x[1], long)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=100, max_size=300),
    st.lists(st.floats(0, 1), min_size=20, max_size=100),
)
def test_the_block_cut_refuses_at_most_the_target_shares_of_ordinary_and_xstest_safe_prompts(
    workplace: list[float], xstest: list[float]
) -> None:
    examples = [_example("workplace", False)] * len(workplace) + [_example("xstest", False)] * len(xstest)
    scores = np.array(workplace + xstest)
    cut = block_cut(scores, examples)
    assert (np.array(workplace) >= cut).mean() <= TARGET_WORKPLACE_FPR
    assert (np.array(xstest) >= cut).mean() <= TARGET_XSTEST_FPR
