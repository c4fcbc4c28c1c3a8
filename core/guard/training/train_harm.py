"""Train the harmful-request classifier on the dev split and write its weights and honest figures.

    python -m core.guard.training.train_harm [--out core/guard/data]

Rows come from core/guard/training/data.py. Only the dev split is trained on. Platt scaling, the block
threshold and the grey zone are chosen on 5-fold cross-validated scores of the dev split, with the
folds grouped so that a workplace template family is never on both sides of a fold (the figures then
describe phrasings the fold's model never saw). The output rail's cut is chosen on the dev model
replies (core/guard/training/replies.py), scored as the rail scores them. The validation split is
scored once, at the end, and written to `harm_classifier.json`. Measured and dropped in favour of
this SVM (docs/guardrails.md): TF-IDF word and character n-grams, alone or stacked with the SVM; a
logistic regression on the same features, alone or averaged with the SVM; other C values;
per-kind-of-harm thresholds; max-pooled token states, alone or beside the mean; an MLP; other kernel
widths and layer subsets; training on model replies too. (Weighting the XSTest-style and workplace
rows up did not move the cross-validated trade-off; fine-tuning MiniLM's top layers,
`finetune_harm.py`, beat this SVM on validation with five layers tuned, and since round 6 that model
scores messages (`ship_head.py`, core/guard/head.py) while this SVM scores replies: see
docs/guardrails.md.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.guard.training import sentence_gate
from core.guard.training.data import Example, load_examples, load_replies
from core.guard.training.sentence_gate import FoldMessages, choose_gate, fold_harmful, fold_messages, refused
from core.telemetry import quiet_libraries

quiet_libraries()

SEED = 20240601
SVM_C = 10.0
FOLDS = 5
TARGET_WORKPLACE_FPR = 0.01
"""The block threshold: at most this share of cross-validated workplace requests blocked..."""
TARGET_XSTEST_FPR = 0.05
"""...and at most this share of cross-validated XSTest safe prompts (XSTest's own: the generated contrasts
are training material, and a whole held-out family of them is harder than any real population)."""
GREY_RECALL = 0.98
"""The grey zone's lower edge: this share of cross-validated harmful rows score above it."""
GREY_BENIGN_FPR = 0.002
"""The grey zone's upper edge: this share of cross-validated workplace requests score above it."""
TARGET_REPLY_FPR = 0.03
"""The output cut: at most this share of the dev split's ordinary model answers withheld. Replies are
never trained on (a reply-trained model, alone or joined with the prompts, was measured and dropped:
docs/guardrails.md), so the full model's scores of the dev replies are already out of sample."""
OUTPUT_GREY_RECALL = 0.99
"""The output grey zone's lower edge: this share of dev harmful replies score above it."""
OUTPUT_GREY_BENIGN_FPR = 0.005
"""The output grey zone's upper edge: this share of dev ordinary answers score above it."""


def fold_key(example: Example) -> str:
    """Rows that must share a fold: a generated template family, else the row alone."""
    return example.id.rsplit("-", 1)[0] if example.source in ("workplace", "contrasts", "own_details") else example.id


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


def cross_validated(
    x: np.ndarray,
    y: np.ndarray,
    keys: np.ndarray,
    on_fold: Callable[[np.ndarray, tuple[np.ndarray, np.ndarray, object]], None] | None = None,
) -> np.ndarray:
    """Out-of-fold SVM decisions, folds grouped by `keys`; `on_fold` gets each fold's held-out rows and model."""
    from sklearn.model_selection import GroupKFold

    out = np.zeros(len(y))
    for train, test in GroupKFold(FOLDS).split(x, groups=keys):
        fitted = fit_svm(x[train], y[train])
        out[test] = decisions(x[test], fitted)
        if on_fold is not None:
            on_fold(test, fitted)
    return out


def platt(decision: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit p = 1 / (1 + exp(a d + b)) on out-of-fold decisions."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(decision.reshape(-1, 1), y)
    return -float(lr.coef_[0, 0]), -float(lr.intercept_[0])


def cut_above(scores: np.ndarray, share: float) -> float:
    """The lowest cut that at most `share` of `scores` reach."""
    ordered = np.sort(scores)
    above = int(np.floor(len(ordered) * share))
    return float(ordered[max(len(ordered) - above - 1, 0)]) + 1e-6


def reply_scores(score_chunks: Callable[[list[str]], np.ndarray], replies: Sequence[Example]) -> np.ndarray:
    """Each reply's worst chunk, as the output rail reads it (`core.guard.actions.reply_chunks`)."""
    from core.guard.actions import reply_chunks

    chunks = [reply_chunks(r.text) for r in replies]
    flat = score_chunks([c for cs in chunks for c in cs])
    ends = np.cumsum([len(cs) for cs in chunks])
    return np.array([float(flat[end - len(cs) : end].max()) for cs, end in zip(chunks, ends, strict=True)])


def output_cuts(scores: np.ndarray, harmful: np.ndarray) -> tuple[float, float, float]:
    """(threshold, grey low, grey high) for replies from the dev replies' scores."""
    threshold = cut_above(scores[~harmful], TARGET_REPLY_FPR)
    low = min(threshold, float(np.quantile(scores[harmful], 1 - OUTPUT_GREY_RECALL)))
    high = max(threshold, cut_above(scores[~harmful], OUTPUT_GREY_BENIGN_FPR))
    return threshold, low, high


def rates(scores: np.ndarray, threshold: float, examples: Sequence[Example]) -> dict[str, dict[str, float]]:
    """Per reporting group: count and share at or above the threshold."""
    out: dict[str, dict[str, float]] = {}
    groups = np.array([e.group for e in examples])
    for name in sorted(set(groups)):
        sel = groups == name
        out[name] = {"n": int(sel.sum()), "blocked": round(float((scores[sel] >= threshold).mean()), 4)}
    return out


def reply_rates(scores: np.ndarray, threshold: float, replies: Sequence[Example]) -> dict[str, dict[str, float]]:
    """Per source and label: count and share of replies withheld."""
    out: dict[str, dict[str, float]] = {}
    for source in sorted({r.source for r in replies}):
        for harmful, name in ((True, "harmful"), (False, "ordinary")):
            sel = np.array([r.source == source and r.harmful == harmful for r in replies])
            withheld = round(float((scores[sel] >= threshold).mean()), 4)
            out[f"{source}:{name}"] = {"n": int(sel.sum()), "withheld": withheld}
    return out


Scored = tuple[np.ndarray, list[np.ndarray]]
"""Messages' whole-text scores and, per message, its sentences' scores (`sentence_gate`'s input)."""


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """What the dev split's cross-validation chooses for the input model, before the final fit."""

    x: np.ndarray
    y: np.ndarray
    a: float
    b: float
    cv_scores: np.ndarray
    """Out-of-fold probabilities of the dev rows, in order."""
    threshold: float
    grey_low: float
    grey_high: float
    ordinary_messages: Scored
    harmful_messages: Scored
    gate: float


def calibrate(
    dev: Sequence[Example], features: Callable[[list[str]], np.ndarray], prompt: Callable[[str], str]
) -> Calibration:
    """Platt scaling, the block threshold, the grey zone and the sentence gate, all from out-of-fold scores
    of the dev rows as `prompt` gives them, encoded by `features` (the shipped recipe, or another encoder's
    features measured with it: benchmarks/guard_encoders.py)."""
    from core.guard.harm import probability

    x = features([prompt(e.text) for e in dev])
    y = np.array([e.harmful for e in dev], dtype=int)
    populations = np.array([e.population for e in dev])
    groups = np.array([e.group for e in dev])

    dev_messages, dev_harmful = FoldMessages(), FoldMessages()
    message_rng = random.Random(sentence_gate.SEED)

    def on_fold(test: np.ndarray, fitted: tuple[np.ndarray, np.ndarray, object]) -> None:
        def decide(texts: list[str]) -> np.ndarray:
            return decisions(features(texts), fitted)

        held_out = [dev[i] for i in test]
        fold_messages(held_out, decide, prompt, dev_messages, message_rng)
        fold_harmful(held_out, decide, prompt, dev_harmful)

    cv_decision = cross_validated(x, y, np.array([fold_key(e) for e in dev]), on_fold)
    a, b = platt(cv_decision, y)
    cv_scores = probability(cv_decision, a, b)
    threshold = max(
        cut_above(cv_scores[populations == "workplace"], TARGET_WORKPLACE_FPR),
        cut_above(cv_scores[groups == "xstest_safe"], TARGET_XSTEST_FPR),
    )
    grey_low = min(threshold, float(np.quantile(cv_scores[y == 1], 1 - GREY_RECALL)))
    grey_high = max(threshold, cut_above(cv_scores[populations == "workplace"], GREY_BENIGN_FPR))
    ordinary_messages, harmful_messages = (
        (probability(np.array(m.wholes), a, b), [probability(np.array(s), a, b) for s in m.sentences])
        for m in (dev_messages, dev_harmful)
    )
    return Calibration(
        x=x,
        y=y,
        a=a,
        b=b,
        cv_scores=cv_scores,
        threshold=threshold,
        grey_low=grey_low,
        grey_high=grey_high,
        ordinary_messages=ordinary_messages,
        harmful_messages=harmful_messages,
        gate=choose_gate(ordinary_messages, harmful_messages, cut=threshold, floor=grey_low),
    )


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    parser.add_argument(
        "--masked",
        action="store_true",
        help="Train and score prompts masked (core.guard.masking.scrub), as the input rail scores them.",
    )
    parser.add_argument(
        "--with-added",
        action="store_true",
        help="Train on the public sets added in round 11 too (data.ADDED_SOURCES; not the shipped weights).",
    )
    parser.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="GROUP",
        help="Do not train on this reporting group's dev rows (say coconot_safe), to measure what it adds.",
    )
    args = parser.parse_args(argv)

    from core.embeddings import shared_sentence_transformer
    from core.encoder import encode
    from core.guard.harm import probability
    from core.guard.masking import scrub

    def prompt(text: str) -> str:
        return scrub(text) if args.masked else text

    examples = load_examples(added=args.with_added)
    dev = [e for e in examples if e.split == "dev" and e.group not in args.leave_out]
    validation = [e for e in examples if e.split == "validation"]
    model = shared_sentence_transformer()
    chosen = calibrate(dev, lambda texts: encode(model, texts).layers, prompt)
    x, y, a, b, cv_scores = chosen.x, chosen.y, chosen.a, chosen.b, chosen.cv_scores
    threshold, grey_low, grey_high, gate = chosen.threshold, chosen.grey_low, chosen.grey_high, chosen.gate
    ordinary_messages, harmful_messages = chosen.ordinary_messages, chosen.harmful_messages
    populations = np.array([e.population for e in dev])

    def blocked_at(suspect: float) -> dict[str, float]:
        return {
            name: round(float(refused(*scored, suspect=suspect, cut=threshold).mean()), 4)
            for name, scored in (("ordinary", ordinary_messages), ("harmful", harmful_messages))
        }

    fitted = fit_svm(x, y)
    mean, scale, svm = fitted

    def score(texts: list[str]) -> np.ndarray:
        return probability(decisions(encode(model, texts).layers, fitted), a, b)

    validation_scores = score([prompt(e.text) for e in validation])
    replies = load_replies()
    dev_replies = [r for r in replies if r.split == "dev"]
    val_replies = [r for r in replies if r.split == "validation"]
    output_threshold, output_low, output_high = output_cuts(
        reply_scores(score, dev_replies), np.array([r.harmful for r in dev_replies])
    )
    val_reply_scores = reply_scores(score, val_replies)

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "harm_classifier.npz"
    np.savez_compressed(
        weights,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        support=svm.support_vectors_.astype(np.float16),  # type: ignore[attr-defined]
        dual=svm.dual_coef_[0].astype(np.float32),  # type: ignore[attr-defined]
        intercept=np.float64(svm.intercept_[0]),  # type: ignore[attr-defined]
        gamma=np.float64(svm._gamma),  # type: ignore[attr-defined]
        platt_a=np.float64(a),
        platt_b=np.float64(b),
        threshold=np.float64(threshold),
        grey_low=np.float64(grey_low),
        grey_high=np.float64(grey_high),
        sentence_gate=np.float64(gate),
        output_threshold=np.float64(output_threshold),
        output_grey_low=np.float64(output_low),
        output_grey_high=np.float64(output_high),
    )
    figures: dict[str, object] = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": f"RBF SVM (C={SVM_C}, gamma=scale) over MiniLM mean-pooled layers 1-6",
        "prompts": "masked (core.guard.masking.scrub)" if args.masked else "as written",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "support_vectors": int(svm.support_vectors_.shape[0]),  # type: ignore[attr-defined]
        "threshold": round(threshold, 4),
        "threshold_rule": (
            f"lowest cut blocking <= {TARGET_WORKPLACE_FPR:.0%} of cross-validated workplace requests and "
            f"<= {TARGET_XSTEST_FPR:.0%} of cross-validated XSTest safe prompts"
        ),
        "grey_zone": [round(grey_low, 4), round(grey_high, 4)],
        "sentence_gate": round(gate, 4),
        "sentence_gate_rule": (
            "the edge, not below the grey zone's, blocking the most cross-validated harmful dev rows of several "
            "sentences less the share of cross-validated ordinary messages (2-3 dev workplace requests) refused"
        ),
        "cross_validated_messages": {
            "ordinary_messages": len(ordinary_messages[0]),
            "harmful_rows_of_several_sentences": len(harmful_messages[0]),
            "blocked_at_grey_zone_edge": blocked_at(grey_low),
            "blocked_at_sentence_gate": blocked_at(gate),
            "blocked_by_a_sentence_alone": blocked_at(2.0),
        },
        "rows": {"dev": len(dev), "validation": len(validation)},
        "left_out": sorted(args.leave_out),
        "cross_validated": rates(cv_scores, threshold, dev),
        "cross_validated_tradeoff": {
            f"workplace_fpr<={target}": {
                "threshold": round(cut, 4),
                "rates": {g: v["blocked"] for g, v in rates(cv_scores, cut, dev).items()},
            }
            for target in (0.005, 0.01, 0.02)
            for cut in [cut_above(cv_scores[populations == "workplace"], target)]
        },
        "validation": rates(validation_scores, threshold, validation),
        "output_threshold": round(output_threshold, 4),
        "output_threshold_rule": (
            f"lowest cut withholding <= {TARGET_REPLY_FPR:.0%} of the dev split's ordinary model answers "
            "(core/guard/training/replies.py)"
        ),
        "output_grey_zone": [round(output_low, 4), round(output_high, 4)],
        "output_validation": reply_rates(val_reply_scores, output_threshold, val_replies),
    }
    (args.out / "harm_classifier.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
