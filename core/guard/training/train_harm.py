"""Train the harmful-request classifier and write its weights and honest figures.

    python -m core.guard.training.train_harm [--data datasets/safety] [--out core/guard/data]

Data: AdvBench (MIT), the odd half of XSTest v2 (CC-BY-4.0) and Parley's own benign and harmful
chat prompts (datasets/safety/parley_*.jsonl). A stratified 20 % of every source is held out and
never trained on; the shipped model is the one trained on the other 80 %, so the held-out figures
describe the shipped weights. Also reported: 5-fold cross-validation on the training part (which
picks the threshold), and a cross-dataset figure (trained without any XSTest row, scored on all of
XSTest), the closest stand-in for prompts worded differently from everything we wrote.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.telemetry import quiet_libraries

quiet_libraries()

REPO = Path(__file__).resolve().parents[3]
SEED = 20240601
HELD_OUT = 0.2
SVM_C = 10.0
TARGET_FPR = 0.05


@dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    id: str
    text: str
    harmful: bool
    source: str
    """advbench, xstest, parley_benign or parley_harmful."""
    kind: str = ""


def load_examples(data: Path) -> list[Example]:
    """Every labelled prompt of the safety datasets, in a stable order."""
    rows: list[Example] = []
    with (data / "advbench_harmful_behaviors.csv").open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            rows.append(Example(id=f"advbench-{i}", text=row["goal"], harmful=True, source="advbench"))
    with (data / "xstest_dev.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append(
                Example(
                    id=f"xstest-{row['id']}",
                    text=row["prompt"],
                    harmful=row["label"] == "unsafe",
                    source="xstest",
                    kind=row["type"],
                )
            )
    for name in ("parley_benign", "parley_harmful"):
        with (data / f"{name}.jsonl").open() as f:
            for line in f:
                item = json.loads(line)
                rows.append(
                    Example(
                        id=item["id"],
                        text=item["text"],
                        harmful=item["label"] == "unsafe",
                        source=name,
                        kind=item.get("category", ""),
                    )
                )
    return rows


def group(example: Example) -> str:
    """The reporting group: a source, split by label where a source has both."""
    if example.source == "xstest":
        return "xstest_unsafe" if example.harmful else "xstest_safe"
    return example.source


def held_out_split(examples: Sequence[Example]) -> np.ndarray:
    """A boolean mask of the held-out rows: 20 % of each group, fixed seed."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(examples))
    groups = np.array([group(e) for e in examples])
    _, test = train_test_split(idx, test_size=HELD_OUT, random_state=SEED, stratify=groups)
    mask = np.zeros(len(examples), dtype=bool)
    mask[test] = True
    return mask


def fit_svm(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, object]:
    """Standardise, then fit an RBF SVM with balanced classes; returns (mean, scale, model)."""
    from sklearn.svm import SVC

    mean = x.mean(0)
    scale = x.std(0) + 1e-6
    model = SVC(C=SVM_C, kernel="rbf", gamma="scale", class_weight="balanced")
    model.fit((x - mean) / scale, y)
    return mean, scale, model


def decisions(x: np.ndarray, fitted: tuple[np.ndarray, np.ndarray, object]) -> np.ndarray:
    mean, scale, model = fitted
    return np.asarray(model.decision_function((x - mean) / scale))  # type: ignore[attr-defined]


def cross_validated(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Out-of-fold SVM decisions (5 folds, stratified by group)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=SEED).split(x, groups):
        out[test] = decisions(x[test], fit_svm(x[train], y[train]))
    return out


def platt(decision: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit p = 1 / (1 + exp(a d + b)) on out-of-fold decisions."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(decision.reshape(-1, 1), y)
    return -float(lr.coef_[0, 0]), -float(lr.intercept_[0])


def pick_threshold(scores: np.ndarray, y: np.ndarray, target_fpr: float = TARGET_FPR) -> float:
    """The lowest cut whose cross-validated false-positive rate on benign prompts is <= target."""
    benign = np.sort(scores[y == 0])
    index = int(np.ceil(len(benign) * (1 - target_fpr)))
    return float(benign[min(index, len(benign) - 1)]) + 1e-6


def blocked_rates(scores: np.ndarray, threshold: float, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per group: count and share of prompts at or above the threshold."""
    out: dict[str, dict[str, float]] = {}
    names = np.array(labels)
    for name in sorted(set(labels)):
        sel = names == name
        out[name] = {"n": int(sel.sum()), "blocked": round(float((scores[sel] >= threshold).mean()), 4)}
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "datasets" / "safety")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = parser.parse_args(argv)

    from core.embeddings import shared_sentence_transformer
    from core.encoder import encode
    from core.guard.harm import probability

    examples = load_examples(args.data)
    x = encode(shared_sentence_transformer(), [e.text for e in examples]).layers
    y = np.array([e.harmful for e in examples], dtype=int)
    groups = np.array([group(e) for e in examples])
    held = held_out_split(examples)
    train = ~held

    cv_decision = cross_validated(x[train], y[train], groups[train])
    a, b = platt(cv_decision, y[train])
    cv_scores = probability(cv_decision, a, b)
    threshold = pick_threshold(cv_scores, y[train])

    fitted = fit_svm(x[train], y[train])
    mean, scale, model = fitted
    held_scores = probability(decisions(x[held], fitted), a, b)

    not_xstest = train & (np.array([e.source for e in examples]) != "xstest")
    is_xstest = np.array([e.source == "xstest" for e in examples])
    cross = fit_svm(x[not_xstest], y[not_xstest])
    cross_scores = probability(decisions(x[is_xstest], cross), a, b)

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "harm_classifier.npz"
    np.savez_compressed(
        weights,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        support=model.support_vectors_.astype(np.float16),  # type: ignore[attr-defined]
        dual=model.dual_coef_[0].astype(np.float32),  # type: ignore[attr-defined]
        intercept=np.float64(model.intercept_[0]),  # type: ignore[attr-defined]
        gamma=np.float64(model._gamma),  # type: ignore[attr-defined]
        platt_a=np.float64(a),
        platt_b=np.float64(b),
        threshold=np.float64(threshold),
    )
    figures: dict[str, object] = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": "RBF SVM (C=10, gamma=scale) over MiniLM mean-pooled layers 1-6",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "support_vectors": int(model.support_vectors_.shape[0]),  # type: ignore[attr-defined]
        "threshold": round(threshold, 4),
        "threshold_rule": f"lowest cut with cross-validated benign false-positive rate <= {TARGET_FPR}",
        "train_rows": int(train.sum()),
        "held_out_rows": int(held.sum()),
        "cross_validated": blocked_rates(cv_scores, threshold, list(groups[train])),
        "cross_validated_tradeoff": {
            f"benign_fpr<={target}": {
                "threshold": round(cut, 4),
                "rates": {g: v["blocked"] for g, v in blocked_rates(cv_scores, cut, list(groups[train])).items()},
            }
            for target in (0.03, 0.05, 0.08)
            for cut in [pick_threshold(cv_scores, y[train], target)]
        },
        "held_out": blocked_rates(held_scores, threshold, list(groups[held])),
        "cross_dataset_xstest": blocked_rates(cross_scores, threshold, list(groups[is_xstest])),
        "held_out_ids": sorted(e.id for e, h in zip(examples, held, strict=True) if h),
    }
    (args.out / "harm_classifier.json").write_text(json.dumps(figures, indent=2) + "\n")
    summary = {k: v for k, v in figures.items() if k != "held_out_ids"}
    print(json.dumps(summary, indent=2))
    return figures


if __name__ == "__main__":
    main()
