"""Train the fine-tuned input head that ships (round 6), choose its cut on dev, and write its weights.

    python -m core.guard.training.ship_head [--out core/guard/data] [--seed N] [--epochs 3]

The model is round 5's (`finetune_harm --tune 5 --epochs 3`): MiniLM's layers 2-6 trained from their
pretrained weights, layer 1 frozen (its states come from the shared pass), a linear head over layers
1-6 mean-pooled and normalised, trained on the whole dev split. The cut follows `train_harm`'s rule,
the one round 5 stated and reported for this model: 5 folds of the dev split grouped by template
family, out-of-fold scores, the lowest cut blocking <= 1 % of workplace requests and <= 5 % of XSTest
safe prompts; the grey zone too (98 % of out-of-fold harmful rows above its lower edge, 0.2 % of
workplace rows above its upper edge). The weights are written as soon as the full model is trained,
with round 5's out-of-fold cut for the same seed and settings (`ROUND5_CUT`) and an in-sample grey
zone, marked provisional; the five fold models then replace those with this run's own.

Tried first this round and dropped (docs/guardrails.md, round 6): choosing the cut on a held-out slice
of benign dev rows scored by the shipped model itself. The slice holds only 32 XSTest safe prompts, so
its 5 % rule is set by the second-highest of them (0.989), and the cut came out higher still.

The validation split is scored once per model, per group and category, at the cut and at a few others
for context, and written beside the weights as `harm_head.json` (sha256, seed, command, figures).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from core.guard.training.data import Example, load_examples
from core.guard.training.finetune_harm import (
    DEPTH,
    Settings,
    block_cut,
    frozen_states,
    population_rates,
    predict,
    train,
)
from core.guard.training.train_harm import (
    FOLDS,
    GREY_BENIGN_FPR,
    GREY_RECALL,
    SEED,
    cut_above,
    fold_key,
    rates,
)
from core.telemetry import quiet_libraries

quiet_libraries()

ROUND5_CUT = 0.917
"""`finetune_harm --tune 5 --epochs 3`'s out-of-fold cut with the module's seed (round 5): the
provisional cut until this run's fold models have scored the dev split."""
CONTEXT_CUTS = (0.5, 0.7, 0.8, 0.9, 0.95)


def oof_cuts(scores: np.ndarray, examples: Sequence[Example]) -> tuple[float, float, float]:
    """(cut, grey low, grey high) from out-of-fold scores of the dev split, by `train_harm`'s rules."""
    populations = np.array([e.population for e in examples])
    harmful = np.array([e.harmful for e in examples])
    cut = block_cut(scores, examples)
    low = min(cut, float(np.quantile(scores[harmful], 1 - GREY_RECALL)))
    high = max(cut, cut_above(scores[populations == "workplace"], GREY_BENIGN_FPR))
    return cut, low, high


def as_shipped(top: Any) -> dict[str, np.ndarray]:
    """The tuned layers' and head's weights in float16, and the model rounded to them in place, so the
    cut is chosen on the numbers that ship. The head's weight absorbs the features' x10 scale."""
    import torch

    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for param in top.parameters():
            param.copy_(param.half().float())
        for i, layer in enumerate(top.layers):
            for name, value in layer.state_dict().items():
                arrays[f"layer{i}.{name}"] = value.numpy().astype(np.float16)
        arrays["head.weight"] = (top.head.weight[0] * 10.0).numpy().astype(np.float16)
        arrays["head.bias"] = top.head.bias.numpy().astype(np.float32)
    return arrays


def grey_shares(scores: np.ndarray, low: float, high: float, examples: Sequence[Example]) -> dict[str, float]:
    """Share of each population inside the grey zone: what the 'auto' cascade sends to the model."""
    populations = np.array([e.population for e in examples])
    inside = (scores >= low) & (scores < high)
    return {p: round(float(inside[populations == p].mean()), 4) for p in ("harmful", "xstest_safe", "workplace")}


def category_rates(scores: np.ndarray, cut: float, examples: Sequence[Example]) -> dict[str, dict[str, float]]:
    """Count and share blocked per group and category (HarmBench's and StrongREJECT's kinds of harm,
    XSTest's prompt types, the workplace families' topics)."""
    keys = np.array([f"{e.group}/{e.category or '-'}" for e in examples])
    return {
        key: {"n": int((keys == key).sum()), "blocked": round(float((scores[keys == key] >= cut).mean()), 4)}
        for key in sorted(set(keys))
    }


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    settings = Settings(tune=DEPTH - 1, epochs=args.epochs)
    command = "python -m core.guard.training.ship_head " + " ".join(sys.argv[1:] if argv is None else argv)
    base: dict[str, object] = {"seed": args.seed, "settings": vars(settings), "command": command.strip()}

    import torch
    from sklearn.model_selection import GroupKFold

    from core.embeddings import shared_sentence_transformer

    torch.set_num_threads(1)
    np.random.seed(args.seed)
    examples = load_examples()
    dev = [e for e in examples if e.split == "dev"]
    validation = [e for e in examples if e.split == "validation"]
    texts = [e.text for e in dev + validation]
    y = np.array([e.harmful for e in dev + validation], dtype=int)
    dev_rows = np.arange(len(dev))
    val_rows = list(range(len(dev), len(texts)))
    model = shared_sentence_transformer()
    bert: Any = model[0].auto_model
    eps = float(bert.config.layer_norm_eps)
    started = time.process_time()
    args.out.mkdir(parents=True, exist_ok=True)
    with Progress() as progress:
        frozen = frozen_states(model, texts, 1, progress)
        top = train(model, frozen, dev_rows, y, settings, progress, "all dev", seed=args.seed)
        arrays = as_shipped(top)
        in_sample = predict(top, frozen, dev_rows.tolist())[0]
        val_scores = predict(top, frozen, val_rows)[0]
        _, low, high = oof_cuts(in_sample, dev)
        cuts = (ROUND5_CUT, min(low, ROUND5_CUT), max(high, ROUND5_CUT))
        write(args.out, arrays, cuts, eps, figures(cuts, val_scores, validation, provisional=True) | base)
        oof = np.zeros(len(dev))
        keys = np.array([fold_key(e) for e in dev])
        for fold, (fit, held) in enumerate(GroupKFold(FOLDS).split(dev_rows, groups=keys)):
            fold_top = train(
                model, frozen, dev_rows[fit], y, settings, progress, f"fold {fold + 1}/{FOLDS}", seed=args.seed
            )
            oof[held] = predict(fold_top, frozen, dev_rows[held].tolist())[0]
    cuts = oof_cuts(oof, dev)
    final = figures(cuts, val_scores, validation, provisional=False)
    final |= {
        "cross_validated": population_rates(oof, cuts[0], dev),
        "cross_validated_groups": rates(oof, cuts[0], dev),
    }
    final |= base
    final["cpu_seconds"] = round(time.process_time() - started, 1)
    write(args.out, arrays, cuts, eps, final)
    np.savez(Path(tempfile.gettempdir()) / "ship_head_scores.npz", oof=oof, validation=val_scores, in_sample=in_sample)
    print(json.dumps({k: final[k] for k in ("threshold", "grey_zone", "validation", "cpu_seconds")}, indent=2))
    return final


def figures(
    cuts: tuple[float, float, float], scores: np.ndarray, validation: Sequence[Example], *, provisional: bool
) -> dict[str, object]:
    """The validation figures at the cut (and at a few others), per population, group and category."""
    cut, low, high = cuts
    return {
        "provisional": provisional,
        "threshold": round(cut, 4),
        "threshold_rule": (
            "round 5's out-of-fold cut for this seed and these settings (provisional)"
            if provisional
            else "lowest cut blocking <= 1% of out-of-fold workplace requests and <= 5% of out-of-fold XSTest "
            "safe prompts (5 folds of the dev split grouped by template family)"
        ),
        "grey_zone": [round(low, 4), round(high, 4)],
        "validation": population_rates(scores, cut, validation),
        "validation_groups": rates(scores, cut, validation),
        "validation_categories": category_rates(scores, cut, validation),
        "validation_grey_share": grey_shares(scores, low, high, validation),
        "validation_at_other_cuts": {
            str(c): {"populations": population_rates(scores, c, validation), "groups": rates(scores, c, validation)}
            for c in CONTEXT_CUTS
        },
    }


def write(
    out: Path, arrays: dict[str, np.ndarray], cuts: tuple[float, float, float], eps: float, report: dict[str, object]
) -> None:
    """The weights with their cut and grey zone, and the figures with the weights' sha256."""
    cut, low, high = cuts
    weights = out / "harm_head.npz"
    scalars = {"threshold": cut, "grey_low": low, "grey_high": high, "layer_norm_eps": eps}
    everything: dict[str, Any] = arrays | {name: np.float64(value) for name, value in scalars.items()}
    np.savez(weights, **everything)
    header = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": "MiniLM layers 2-6 fine-tuned (layer 1 frozen, from the shared pass) + linear head over "
        "layers 1-6 mean-pooled and L2-normalised; float16 weights",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    (out / "harm_head.json").write_text(json.dumps(header | report, indent=2) + "\n")


if __name__ == "__main__":
    main()
