"""Train the fine-tuned input head that ships (round 6), choose its cut on dev, and write its weights.

    python -m core.guard.training.ship_head [--out core/guard/data] [--seed N]

The model is round 5's (`finetune_harm`): MiniLM's layers 2-6 trained from their pretrained weights,
layer 1 frozen, a linear head over layers 1-6 mean-pooled and normalised. What changes is the cut
rule. Round 5 chose the cut on out-of-fold scores of five fold models, which over-refused dev XSTest
safe prompts (6.5 %) far more than the model trained on all of dev does, so the cut landed near 0.95.
Here the model that chooses the cut is the model that ships:

- a held-out slice of the dev split's benign rows (workplace requests and Parley's benign chat, XSTest's
  safe prompts and the safe side of the contrasts), a quarter of them by template family
  (`in_slice`), is never trained on; every harmful dev row and the other benign rows are;
- the cut is the lowest that blocks <= 1 % of the slice's workplace-population rows and <= 5 % of
  its XSTest safe prompts (XSTest's own, as `train_harm`), scored by the shipped weights exactly as
  they ship (float16);
- the grey zone (PARLEY_GUARD_LLM=auto) runs from the score the most alarming fifth of the slice's
  XSTest-style safe prompts reach, up to the score 0.2 % of its workplace rows reach.

The validation split is scored once, at the end, per group, at that cut and at a few others for
context, and written beside the weights as `harm_head.json` (sha256, seed, command, figures).
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
from core.guard.training.finetune_harm import DEPTH, Settings, frozen_states, population_rates, predict, train
from core.guard.training.train_harm import (
    SEED,
    TARGET_WORKPLACE_FPR,
    TARGET_XSTEST_FPR,
    cut_above,
    fold_key,
    rates,
)
from core.telemetry import quiet_libraries

quiet_libraries()

SLICE_BUCKETS = 4
"""One template family in this many goes to the held-out benign slice."""
GREY_SAFE_SHARE = 0.20
"""The grey zone's lower edge: the score this share of the slice's XSTest-style safe prompts reach."""
GREY_WORKPLACE_FPR = 0.002
"""The grey zone's upper edge: the score this share of the slice's workplace rows reach."""
CONTEXT_CUTS = (0.5, 0.7, 0.8, 0.9, 0.95)


def in_slice(example: Example) -> bool:
    """Whether a dev row belongs to the held-out benign slice: benign, and its template family (or the
    row itself) hashes into bucket 0."""
    digest = hashlib.sha256(fold_key(example).encode()).digest()
    return not example.harmful and digest[0] % SLICE_BUCKETS == 0


def slice_cuts(scores: np.ndarray, examples: Sequence[Example]) -> tuple[float, float, float]:
    """(cut, grey low, grey high) from the held-out slice's scores, by the rule in the module docstring."""
    populations = np.array([e.population for e in examples])
    groups = np.array([e.group for e in examples])
    workplace = scores[populations == "workplace"]
    cut = max(
        cut_above(workplace, TARGET_WORKPLACE_FPR),
        cut_above(scores[groups == "xstest_safe"], TARGET_XSTEST_FPR),
    )
    low = min(cut, cut_above(scores[populations == "xstest_safe"], GREY_SAFE_SHARE))
    high = max(cut, cut_above(workplace, GREY_WORKPLACE_FPR))
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

    import torch

    from core.embeddings import shared_sentence_transformer

    torch.set_num_threads(1)
    np.random.seed(args.seed)
    examples = load_examples()
    dev = [e for e in examples if e.split == "dev"]
    validation = [e for e in examples if e.split == "validation"]
    held = [e for e in dev if in_slice(e)]
    trained = [e for e in dev if not in_slice(e)]
    rows = trained + held + validation
    texts = [e.text for e in rows]
    y = np.array([e.harmful for e in rows], dtype=int)
    fit = np.arange(len(trained))
    held_rows = list(range(len(trained), len(trained) + len(held)))
    val_rows = list(range(len(trained) + len(held), len(rows)))
    model = shared_sentence_transformer()
    started = time.process_time()
    with Progress() as progress:
        frozen = frozen_states(model, texts, 1, progress)
        top = train(model, frozen, fit, y, settings, progress, "layers 2-6 and head", seed=args.seed)
        arrays = as_shipped(top)
        held_scores = predict(top, frozen, held_rows)[0]
        cut, low, high = slice_cuts(held_scores, held)
        val_scores = predict(top, frozen, val_rows)[0]
    arrays.update(
        threshold=np.float64(cut),
        grey_low=np.float64(low),
        grey_high=np.float64(high),
        layer_norm_eps=np.float64(model[0].auto_model.config.layer_norm_eps),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "harm_head.npz"
    np.savez(weights, **arrays)
    figures: dict[str, object] = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": "MiniLM layers 2-6 fine-tuned (layer 1 frozen, from the shared pass) + linear head over "
        "layers 1-6 mean-pooled and L2-normalised; float16 weights",
        "command": "python -m core.guard.training.ship_head " + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "settings": vars(settings),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "cpu_seconds": round(time.process_time() - started, 1),
        "threshold": round(cut, 4),
        "threshold_rule": "lowest cut blocking <= 1% of the held-out dev slice's workplace-population rows and "
        "<= 5% of its XSTest safe prompts, scored by the shipped (float16) model",
        "grey_zone": [round(low, 4), round(high, 4)],
        "rows": {"trained": len(trained), "held_out_slice": len(held), "validation": len(validation)},
        "held_out_slice": rates(held_scores, cut, held),
        "validation": population_rates(val_scores, cut, validation),
        "validation_groups": rates(val_scores, cut, validation),
        "validation_categories": category_rates(val_scores, cut, validation),
        "validation_grey_share": grey_shares(val_scores, low, high, validation),
        "validation_at_other_cuts": {
            str(c): {
                "populations": population_rates(val_scores, c, validation),
                "groups": rates(val_scores, c, validation),
            }
            for c in CONTEXT_CUTS
        },
    }
    (args.out / "harm_head.json").write_text(json.dumps(figures, indent=2) + "\n")
    np.savez(Path(tempfile.gettempdir()) / "ship_head_scores.npz", held=held_scores, validation=val_scores)
    print(json.dumps({k: figures[k] for k in ("threshold", "grey_zone", "validation", "cpu_seconds")}, indent=2))
    return figures


if __name__ == "__main__":
    main()
