"""The round 17 measurement's rules (benchmarks/guard_head_cascade.py, docs/guardrails.md round 17)."""

from __future__ import annotations

import numpy as np

from benchmarks.guard_head_cascade import SVM_GREY, cascade, cut_rule


def test_cascade_lets_the_svm_decide_outside_its_grey_zone_and_the_head_inside_it() -> None:
    low, high = SVM_GREY
    svm = np.array([low - 0.01, low, high - 0.01, high])
    head = np.array([0.99, 0.3, 0.7, 0.01])
    assert cascade(svm, head).tolist() == [-1.0, 0.3, 0.7, 2.0]


def test_cut_rule_is_the_lowest_cut_within_both_bounds() -> None:
    workplace = np.linspace(0.0, 0.5, 200)
    safe = np.concatenate([np.zeros(95), np.array([0.6, 0.7, 0.8, 0.9, 0.95])])
    cut = cut_rule(workplace, safe)
    assert (safe >= cut).mean() <= 0.05
    assert (workplace >= cut).mean() <= 0.01
    lower = cut - 1e-3
    assert (workplace >= lower).mean() > 0.01 or (safe >= lower).mean() > 0.05
