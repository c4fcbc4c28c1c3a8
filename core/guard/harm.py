"""The harmful-request and harmful-reply classifier: an RBF support-vector machine over MiniLM layer features.

It scores messages too unless the fine-tuned input head (core/guard/head.py, round 6) is configured
(`GuardConfig(head_weights=DEFAULT_HEAD)`).

Trained by `python -m core.guard.training.train_harm` on the dev split of the safety sets
(core/guard/training/data.py); the weights ship as `data/harm_classifier.npz` (plain arrays, no
pickle) with the block thresholds and grey zones of messages and of replies (the scores
PARLEY_GUARD_LLM=auto refers to the model), and the measured figures as `data/harm_classifier.json`.
The features come from the shared MiniLM pass (core/encoder.py), so the classifier adds a few
matrix products in numpy and no model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_WEIGHTS = DATA_DIR / "harm_classifier.npz"
DEFAULT_HEAD = DATA_DIR / "harm_head.npz"
"""The fine-tuned input head's weights (core/guard/head.py)."""


FEW_ROWS = 4
"""Up to this many rows a decision runs row by row (matrix-vector products), beyond it as one product."""


@dataclass(frozen=True, kw_only=True)
class HarmClassifier:
    """Scores texts from 0 (benign) to 1 (harmful request); `threshold` is the calibrated cut and
    `grey` (low, high) the uncertain scores a configured language model may be asked about; the
    `output_` pair are the same for replies."""

    mean: np.ndarray
    scale: np.ndarray
    support: np.ndarray
    dual: np.ndarray
    intercept: float
    gamma: float
    platt_a: float
    platt_b: float
    threshold: float
    grey: tuple[float, float]
    sentence_gate: float
    """The score one sentence must reach before its message's whole text counts (core/guard/sentences.py),
    chosen on ordinary dev messages scored out of fold (core/guard/training/sentence_gate.py)."""
    output_threshold: float
    """The cut on a reply's worst chunk, chosen on generated model replies (core/guard/training/replies.py)."""
    output_grey: tuple[float, float]

    @classmethod
    def load(cls, path: Path = DEFAULT_WEIGHTS) -> HarmClassifier:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                mean=data["mean"].astype(np.float32),
                scale=data["scale"].astype(np.float32),
                support=data["support"].astype(np.float32),
                dual=data["dual"].astype(np.float32),
                intercept=float(data["intercept"]),
                gamma=float(data["gamma"]),
                platt_a=float(data["platt_a"]),
                platt_b=float(data["platt_b"]),
                threshold=float(data["threshold"]),
                grey=(float(data["grey_low"]), float(data["grey_high"])),
                sentence_gate=float(data["sentence_gate"]),
                output_threshold=float(data["output_threshold"]),
                output_grey=(float(data["output_grey_low"]), float(data["output_grey_high"])),
            )

    def decision(self, features: np.ndarray) -> np.ndarray:
        """The SVM's signed distance for each row of layer features."""
        x = (features.astype(np.float32) - self.mean) / self.scale
        # A few rows (a message's sentences, a reply's chunks) go one by one through BLAS's matrix-vector
        # product: as one matrix product OpenBLAS first repacks all 1,724 x 2,304 support numbers, which
        # cost 3 ms for two rows against 0.4 ms for one.
        few = 0 < len(x) <= FEW_ROWS
        products = np.stack([self.support @ row for row in x]) if few else (self.support @ x.T).T
        sq = (x * x).sum(1)[:, None] + self._support_norms[None, :] - 2.0 * products
        kernel = np.exp(-self.gamma * np.maximum(sq, 0.0))
        return np.asarray(kernel @ self.dual + self.intercept, dtype=np.float64)

    @cached_property
    def _support_norms(self) -> np.ndarray:
        """Squared norms of the support vectors, computed once rather than on every call."""
        return np.asarray((self.support * self.support).sum(1), dtype=np.float32)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Probability-like scores (Platt-scaled on cross-validated decisions)."""
        return probability(self.decision(features), self.platt_a, self.platt_b)


def probability(decision: np.ndarray, a: float, b: float) -> np.ndarray:
    """Platt scaling: 1 / (1 + exp(a * d + b))."""
    return np.asarray(1.0 / (1.0 + np.exp(np.clip(a * decision + b, -50.0, 50.0))), dtype=np.float64)
