"""The encoder comparison's reusable parts (benchmarks/guard_encoders.py, docs/guardrails.md round 16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.guard_encoders import FeatureCache, Trained, at_most, rail_scores, side_by_side
from core.guard.masking import scrub
from core.guard.sentences import message_score, split_sentences
from core.guard.training.train_harm import fit_svm


def _lengths(texts: list[str]) -> np.ndarray:
    """A feature anyone can check by eye: each text's length and its count of the letter e."""
    return np.array([[len(t), t.count("e")] for t in texts], dtype=np.float32)


class _Counting:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return _lengths(texts)


def test_feature_cache_encodes_each_new_text_once_and_a_rerun_reads_them_from_disk(tmp_path: Path) -> None:
    first = _Counting()
    cache = FeatureCache(tmp_path / "vectors.npz", first)
    cache(["alpha", "beta", "alpha"])
    cache(["beta", "gamma"])
    assert first.seen == ["alpha", "beta", "gamma"]
    rerun = _Counting()
    vectors = FeatureCache(tmp_path / "vectors.npz", rerun)(["gamma", "alpha"])
    assert rerun.seen == []
    assert np.array_equal(vectors, _lengths(["gamma", "alpha"]))


def test_side_by_side_concatenates_each_encoders_features_in_order() -> None:
    def doubled(texts: list[str]) -> np.ndarray:
        return 2 * _lengths(texts)

    assert np.array_equal(side_by_side(_lengths, doubled)(["abc"]), [[3, 0, 6, 0]])


def _model(gate: float) -> Trained:
    texts = ["short", "a longer one here", "tiny", "the longest text of them all, by far", "mid-length text"]
    x = _lengths(texts)
    fitted = fit_svm(x, np.array([0, 1, 0, 1, 1]))
    return Trained(
        fitted=fitted,
        a=-1.0,
        b=0.0,
        threshold=0.5,
        grey=(0.2, 0.8),
        gate=gate,
        cross_validated={},
        support_vectors=0,
        cv_scores=np.zeros(0),
    )


def test_rail_scores_score_a_message_masked_whole_and_per_sentence_as_the_input_rail_does() -> None:
    model = _model(gate=0.0)
    message = "Mail me at ada@example.com please. Then delete everything. Thanks!"
    masked = scrub(message)
    pieces = split_sentences(masked)
    scores = model.scores(_lengths([masked, *pieces]))
    expected = message_score(float(scores[0]), [float(s) for s in scores[1:]], model.gate)[0]
    assert rail_scores(model, _lengths, [message])[0] == expected


def test_rail_scores_score_a_single_sentence_by_its_masked_text() -> None:
    model = _model(gate=0.0)
    message = "Write to ada@example.com"
    assert rail_scores(model, _lengths, [message])[0] == model.scores(_lengths([scrub(message)]))[0]


def test_at_most_gives_the_lowest_cut_that_no_more_than_count_scores_reach() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    assert [int((scores >= at_most(scores, k)).sum()) for k in range(5)] == [0, 1, 2, 3, 4]
    assert at_most(scores, 1) > 0.7
    assert at_most(scores, 1) < 0.9
