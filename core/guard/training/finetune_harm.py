"""Fine-tune MiniLM's top transformer layers as a harmful-request classifier, on CPU, and measure it.

    python -m core.guard.training.finetune_harm [--tune 5] [--epochs 3] [--out finetune_harm.json]

The experiment of round 5 (issue #16): every classifier over frozen MiniLM features capped near 85 %
harmful recall at <= 1 % workplace refusals. Here the bottom layers stay frozen (so the shared pass
could still compute their states once per turn) and the top `--tune` layers are trained with a
linear head over their mean-pooled output, on the dev split only. The block cut is chosen exactly as
`train_harm` chooses it: on 5-fold out-of-fold scores of the dev split, folds grouped by template
family; the output cut on the dev model replies. The validation split is scored once, at the end,
beside the shipped SVM on the same rows (classifier only, no other rail), and written as JSON.
Seeded; the frozen states are computed once per run and shared by the folds. The 5-layer model
ships since round 6: `ship_head.py` trains it and writes its weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.progress import Progress

from core.encoder import mean_pool
from core.guard.training.data import Example, load_examples, load_replies
from core.guard.training.train_harm import (
    FOLDS,
    SEED,
    TARGET_WORKPLACE_FPR,
    TARGET_XSTEST_FPR,
    cut_above,
    decisions,
    fit_svm,
    fold_key,
    output_cuts,
    platt,
    rates,
    reply_rates,
    reply_scores,
)
from core.telemetry import quiet_libraries

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

quiet_libraries()

DEPTH = 6
"""MiniLM-L6's transformer layers."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What a run trains: the top `tune` layers, for `epochs`, at these learning rates."""

    tune: int = 5
    epochs: int = 3
    batch: int = 32
    layer_lr: float = 1e-4
    head_lr: float = 2e-3
    weight_decay: float = 0.01


@dataclass(frozen=True, kw_only=True)
class Frozen:
    """Each text's token states at the input of the first tuned layer, and its frozen layers' pooled states."""

    states: list[torch.Tensor]
    pooled: torch.Tensor
    """(n, cut * 384): mean-pooled, L2-normalised layers 1..cut, as core/encoder.py pools them."""


def frozen_states(model: SentenceTransformer, texts: Sequence[str], cut: int, progress: Progress) -> Frozen:
    """Run the frozen bottom `cut` layers once over `texts` (inference only), keeping unpadded states."""
    import torch

    bert: Any = model[0].auto_model
    out: list[torch.Tensor] = []
    pooled: list[torch.Tensor] = []
    task = progress.add_task(f"frozen layers 1-{cut}", total=len(texts))
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = model.tokenizer(
                list(texts[start : start + 64]),
                padding=True,
                truncation=True,
                max_length=model.get_max_seq_length(),
                return_tensors="pt",
            )
            every = bert(**batch, output_hidden_states=True).hidden_states
            pooled.append(mean_pool(every[1 : cut + 1], batch["attention_mask"]))
            hidden = every[cut]
            for row, mask in zip(hidden, batch["attention_mask"], strict=True):
                out.append(row[: int(mask.sum())].clone())
            progress.advance(task, len(batch["input_ids"]))
    return Frozen(states=out, pooled=torch.cat(pooled) if pooled else torch.zeros(len(texts), 0))


def pad(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token states into (n, tokens, 384) with their 0/1 mask (n, tokens)."""
    import torch

    longest = max(int(s.shape[0]) for s in states)
    x = torch.zeros(len(states), longest, states[0].shape[1])
    mask = torch.zeros(len(states), longest)
    for i, s in enumerate(states):
        x[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1.0
    return x, mask


def build(model: SentenceTransformer, tune: int) -> torch.nn.Module:
    """Copies of the top `tune` layers and a linear head over layers 1-6 mean-pooled and normalised."""
    import torch

    bert: Any = model[0].auto_model
    layers = torch.nn.ModuleList(copy.deepcopy(layer) for layer in bert.encoder.layer[DEPTH - tune :])

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = layers
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(DEPTH * 384, 1)

        def features(self, x: torch.Tensor, mask: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
            """Layers 1-6 pooled as the SVM reads them, the top `tune` of them from the tuned layers."""
            additive = (1.0 - mask[:, None, None, :]) * torch.finfo(x.dtype).min
            tuned = []
            for layer in self.layers:
                out = layer(x, additive)
                x = out[0] if isinstance(out, tuple) else out
                tuned.append(x)
            return torch.cat([below, mean_pool(tuned, mask)], dim=-1)

        def forward(self, x: torch.Tensor, mask: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
            return self.head(self.dropout(self.features(x, mask, below) * 10.0)).squeeze(-1)

    return Top()


def train(
    model: SentenceTransformer,
    frozen: Frozen,
    rows: np.ndarray,
    y: np.ndarray,
    settings: Settings,
    progress: Progress,
    label: str,
    *,
    seed: int = SEED,
) -> torch.nn.Module:
    """Fit the top layers and head on `rows` with class-balanced BCE; batches of similar length."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    top = build(model, settings.tune)
    top.train()
    head_params = list(top.head.parameters())  # type: ignore[union-attr]
    layer_params = list(top.layers.parameters())  # type: ignore[union-attr]
    optimiser = torch.optim.AdamW(
        [{"params": layer_params, "lr": settings.layer_lr}, {"params": head_params, "lr": settings.head_lr}],
        weight_decay=settings.weight_decay,
    )
    positives = float(y[rows].mean())
    pos_weight = torch.tensor((1 - positives) / max(positives, 1e-6))
    by_length = sorted(rows.tolist(), key=lambda i: int(frozen.states[i].shape[0]))
    batches = [by_length[i : i + settings.batch] for i in range(0, len(by_length), settings.batch)]
    steps = settings.epochs * len(batches)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[settings.layer_lr, settings.head_lr], total_steps=steps, pct_start=0.1
    )
    task = progress.add_task(label, total=steps)
    for _ in range(settings.epochs):
        rng.shuffle(batches)
        for batch in batches:
            x, mask = pad([frozen.states[i] for i in batch])
            target = torch.tensor(y[batch], dtype=torch.float32)
            logits = top(x, mask, frozen.pooled[batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            progress.advance(task)
    top.eval()
    return top


def predict(top: Any, frozen: Frozen, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities for `rows` of the frozen states, and their layer 1-6 features after tuning."""
    import torch

    order = sorted(rows, key=lambda i: int(frozen.states[i].shape[0]))
    out = np.zeros(len(frozen.states))
    features = np.zeros((len(frozen.states), DEPTH * 384), np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            x, mask = pad([frozen.states[i] for i in chunk])
            f = top.features(x, mask, frozen.pooled[chunk])
            features[chunk] = f.numpy()
            out[chunk] = torch.sigmoid(top.head(f * 10.0).squeeze(-1)).numpy()
    return out[list(rows)], features[list(rows)]


def block_cut(scores: np.ndarray, examples: Sequence[Example]) -> float:
    """train_harm's rule on out-of-fold scores: <= 1 % of workplace and <= 5 % of XSTest safe blocked."""
    populations = np.array([e.population for e in examples])
    groups = np.array([e.group for e in examples])
    return max(
        cut_above(scores[populations == "workplace"], TARGET_WORKPLACE_FPR),
        cut_above(scores[groups == "xstest_safe"], TARGET_XSTEST_FPR),
    )


def population_rates(scores: np.ndarray, cut: float, examples: Sequence[Example]) -> dict[str, float]:
    """Share blocked per population (harmful, xstest_safe, workplace)."""
    populations = np.array([e.population for e in examples])
    names = ("harmful", "xstest_safe", "workplace")
    return {p: round(float((scores[populations == p] >= cut).mean()), 4) for p in names}


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", type=int, default=5, help="top transformer layers to train (1-6)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--layer-lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--out", type=Path, default=Path("finetune_harm.json"))
    args = parser.parse_args(argv)
    settings = Settings(tune=args.tune, epochs=args.epochs, layer_lr=args.layer_lr, head_lr=args.head_lr)

    from sklearn.model_selection import GroupKFold

    from core.embeddings import shared_sentence_transformer
    from core.encoder import encode
    from core.guard.actions import reply_chunks
    from core.guard.harm import HarmClassifier, probability

    np.random.seed(SEED)
    examples = load_examples()
    dev = [e for e in examples if e.split == "dev"]
    validation = [e for e in examples if e.split == "validation"]
    replies = load_replies()
    dev_replies = [r for r in replies if r.split == "dev"]
    val_replies = [r for r in replies if r.split == "validation"]
    chunks = sorted({c for r in replies for c in reply_chunks(r.text)})
    texts = [e.text for e in dev] + [e.text for e in validation] + chunks
    index = {t: i for i, t in reversed(list(enumerate(texts)))}
    model = shared_sentence_transformer()
    y = np.array([e.harmful for e in dev] + [e.harmful for e in validation] + [False] * len(chunks), dtype=int)
    dev_rows = np.arange(len(dev))
    started = time.process_time()

    with Progress() as progress:
        frozen = frozen_states(model, texts, DEPTH - settings.tune, progress)
        oof = np.zeros(len(dev))
        svm_oof = np.zeros(len(dev))
        keys = np.array([fold_key(e) for e in dev])
        for fold, (fit, held) in enumerate(GroupKFold(FOLDS).split(dev_rows, groups=keys)):
            top = train(model, frozen, dev_rows[fit], y, settings, progress, f"fold {fold + 1}/{FOLDS}")
            oof[held], held_features = predict(top, frozen, dev_rows[held].tolist())
            svm_oof[held] = decisions(held_features, fit_svm(predict(top, frozen, dev_rows[fit].tolist())[1], y[fit]))
        cut = block_cut(oof, dev)
        a, b = platt(svm_oof, y[: len(dev)])
        svm_oof_p = probability(svm_oof, a, b)
        svm_cut = block_cut(svm_oof_p, dev)
        top = train(model, frozen, dev_rows, y, settings, progress, "all dev")
        svm = fit_svm(predict(top, frozen, dev_rows.tolist())[1], y[: len(dev)])

    def score(batch: list[str]) -> np.ndarray:
        return predict(top, frozen, [index[t] for t in batch])[0]

    def svm_score(batch: list[str]) -> np.ndarray:
        return probability(decisions(predict(top, frozen, [index[t] for t in batch])[1], svm), a, b)

    val_scores = score([e.text for e in validation])
    tuned_svm_val = svm_score([e.text for e in validation])
    svm_output = output_cuts(reply_scores(svm_score, dev_replies), np.array([r.harmful for r in dev_replies]))
    output_threshold, output_low, output_high = output_cuts(
        reply_scores(score, dev_replies), np.array([r.harmful for r in dev_replies])
    )
    shipped = HarmClassifier.load()
    svm_val = shipped.score(encode(model, [e.text for e in validation]).layers)
    svm_replies = reply_scores(lambda b: shipped.score(encode(model, b).layers), val_replies)
    figures: dict[str, object] = {
        "settings": vars(settings),
        "cpu_seconds": round(time.process_time() - started, 1),
        "threshold": round(cut, 4),
        "cross_validated": population_rates(oof, cut, dev),
        "validation": population_rates(val_scores, cut, validation),
        "validation_groups": rates(val_scores, cut, validation),
        "output_threshold": round(output_threshold, 4),
        "output_grey_zone": [round(output_low, 4), round(output_high, 4)],
        "output_validation": reply_rates(reply_scores(score, val_replies), output_threshold, val_replies),
        "tuned_svm_threshold": round(svm_cut, 4),
        "tuned_svm_cross_validated": population_rates(svm_oof_p, svm_cut, dev),
        "tuned_svm_validation": population_rates(tuned_svm_val, svm_cut, validation),
        "tuned_svm_validation_groups": rates(tuned_svm_val, svm_cut, validation),
        "tuned_svm_output_threshold": round(svm_output[0], 4),
        "tuned_svm_output_validation": reply_rates(reply_scores(svm_score, val_replies), svm_output[0], val_replies),
        "shipped_svm_validation": population_rates(svm_val, shipped.threshold, validation),
        "shipped_svm_output_validation": reply_rates(svm_replies, shipped.output_threshold, val_replies),
        "validation_at_fixed_cuts": {
            str(c): population_rates(val_scores, c, validation) for c in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
        },
    }
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    np.savez(
        args.out.with_suffix(".npz"),
        oof=oof,
        validation=val_scores,
        svm_validation=svm_val,
        tuned_svm_oof=svm_oof_p,
        tuned_svm_validation=tuned_svm_val,
    )
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
