"""The input rail's harm score: MiniLM's layers 2-6, fine-tuned, and a linear head, in numpy.

Trained by `python -m core.guard.training.ship_head` (round 6 of docs/guardrails.md) on the dev split;
the weights ship in float16 as `data/harm_head.npz` (plain arrays, no pickle; cast to float32 here)
with the block cut and the grey zone chosen on a held-out dev slice, and the figures as
`data/harm_head.json`. Layer 1's token states and pooled vector come from the shared MiniLM pass
(core/encoder.py), so a message costs that one pass plus these five layers over its own tokens,
without torch. The reply rail keeps the SVM over frozen features (core/guard/harm.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

from core.guard.harm import DEFAULT_HEAD

HEADS = 12
"""MiniLM's attention heads per layer (of 32 dimensions each)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BertLayer:
    """One transformer layer's weights, laid out for `x @ w` (torch's Linear stores `w.T`)."""

    qkv: np.ndarray
    """(384, 3 * 384): query, key and value projections side by side."""
    qkv_bias: np.ndarray
    attention_out: np.ndarray
    attention_out_bias: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    intermediate: np.ndarray
    intermediate_bias: np.ndarray
    output: np.ndarray
    output_bias: np.ndarray
    output_norm: tuple[np.ndarray, np.ndarray]

    def __call__(self, x: np.ndarray, eps: float) -> np.ndarray:
        """The layer over one text's (tokens, 384) states; every token is real, so nothing is masked."""
        tokens, width = x.shape
        q, k, v = np.split(x @ self.qkv + self.qkv_bias, 3, axis=1)
        q, k, v = (m.reshape(tokens, HEADS, width // HEADS).transpose(1, 0, 2) for m in (q, k, v))
        attention = softmax(q @ k.transpose(0, 2, 1) / np.sqrt(np.float32(width // HEADS)))
        context = (attention @ v).transpose(1, 0, 2).reshape(tokens, width)
        x = layer_norm(context @ self.attention_out + self.attention_out_bias + x, *self.attention_norm, eps)
        hidden = gelu(x @ self.intermediate + self.intermediate_bias)
        return layer_norm(hidden @ self.output + self.output_bias + x, *self.output_norm, eps)


@dataclass(frozen=True, kw_only=True, slots=True)
class InputHead:
    """Scores a message from 0 (benign) to 1 (harmful request) from its layer-1 states; `threshold` is
    the cut chosen on dev, `grey` (low, high) the scores PARLEY_GUARD_LLM=auto refers to the model."""

    layers: tuple[BertLayer, ...]
    weight: np.ndarray
    """(6 * 384,): the linear head over layers 1-6 pooled (the training's x10 feature scale folded in)."""
    bias: float
    eps: float
    threshold: float
    grey: tuple[float, float]

    @classmethod
    def load(cls, path: Path = DEFAULT_HEAD) -> InputHead:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name].astype(np.float32) for name in data.files}
        count = len({name.split(".", 1)[0] for name in arrays if name.startswith("layer") and "." in name})
        return cls(
            layers=tuple(_layer(arrays, f"layer{i}.") for i in range(count)),
            weight=arrays["head.weight"],
            bias=arrays["head.bias"].item(),
            eps=float(arrays["layer_norm_eps"]),
            threshold=float(arrays["threshold"]),
            grey=(float(arrays["grey_low"]), float(arrays["grey_high"])),
        )

    def features(self, tokens: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Layers 1-6 mean-pooled and L2-normalised, side by side: `first` is layer 1's (from the shared
        pass), the rest come from running the tuned layers over `tokens`, layer 1's token states."""
        x = tokens.astype(np.float32)
        pooled = [first.astype(np.float32)]
        for layer in self.layers:
            x = layer(x, self.eps)
            pooled.append(normalise(x.mean(0)))
        return np.concatenate(pooled)

    def score(self, tokens: np.ndarray, first: np.ndarray) -> float:
        """One message's score; a text without tokens scores 0."""
        if not len(tokens):
            return 0.0
        logit = float(self.features(tokens, first) @ self.weight) + self.bias
        return float(1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0))))

    def scores(self, tokens: Sequence[np.ndarray], first: np.ndarray) -> np.ndarray:
        """Scores of several messages (their token states, and their layer-1 pooled rows)."""
        return np.array([self.score(t, f) for t, f in zip(tokens, first, strict=True)])


def _layer(arrays: dict[str, np.ndarray], prefix: str) -> BertLayer:
    def get(name: str) -> np.ndarray:
        return arrays[prefix + name]

    projections = ("query", "key", "value")
    return BertLayer(
        qkv=np.ascontiguousarray(np.concatenate([get(f"attention.self.{p}.weight").T for p in projections], axis=1)),
        qkv_bias=np.concatenate([get(f"attention.self.{p}.bias") for p in projections]),
        attention_out=np.ascontiguousarray(get("attention.output.dense.weight").T),
        attention_out_bias=get("attention.output.dense.bias"),
        attention_norm=(get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias")),
        intermediate=np.ascontiguousarray(get("intermediate.dense.weight").T),
        intermediate_bias=get("intermediate.dense.bias"),
        output=np.ascontiguousarray(get("output.dense.weight").T),
        output_bias=get("output.dense.bias"),
        output_norm=(get("output.LayerNorm.weight"), get("output.LayerNorm.bias")),
    )


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by its maximum for stability."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return np.asarray(e / e.sum(-1, keepdims=True), dtype=np.float32)


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x) through erf (MiniLM's `hidden_act` is 'gelu', not the tanh fit)."""
    return np.asarray(0.5 * x * (1.0 + erf(x / np.float32(np.sqrt(2.0)))), dtype=np.float32)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as torch)."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + np.float32(eps)) * weight + bias, dtype=np.float32)


def normalise(v: np.ndarray) -> np.ndarray:
    """L2-normalise as torch.nn.functional.normalize (norm floored at 1e-12)."""
    return np.asarray(v / max(float(np.linalg.norm(v)), 1e-12), dtype=np.float32)
