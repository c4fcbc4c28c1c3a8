"""Fit the request-aware reply cut (core/guard/reply_rule.py) on the dev replies paired with dev requests.

    python -m core.guard.training.fit_reply_rule [--out core/guard/data/reply_rule.json]

Each dev reply of core/guard/training/replies.py meets a request from every dev request family of its
label (plain asks, role-play, fiction, hypotheticals, follow-ups that name nothing). Every turn is
scored as the rails score it with the shipped classifier: the request's harm score over its masked
text, whether it passes the input rail (under the input cut and the jailbreak threshold), the reply's
worst chunk, and the reply's relevance to the request. The rule, stated before any validation run:
over a fixed grid, the rule that withholds the fewest ordinary dev answers while withholding at least
as many harmful dev replies whose request passed the input rail as the shipped reply-only cut does
(those are the turns the output rail exists for); ties go to the lower clear cut, then the lower
request band, then the stricter relevance (the rule that exempts least). Validation is never read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.guard.reply_rule import DEFAULT_REPLY_RULE, ReplyRule
from core.guard.training.data import ReplyPair, load_reply_pairs
from core.telemetry import quiet_libraries

quiet_libraries()

REQUEST_BANDS = (0.05, 0.1, 0.166, 0.3)
"""Request scores under which a request reads as clearly ordinary (0.166: the input grey zone's edge)."""
ON_TOPIC = (0.3, 0.4, 0.5, 0.6)
"""Relevance of the reply to the request (cosine) from which the request speaks for the reply."""
CLEAR_CUTS = tuple(round(0.8 + 0.005 * i, 3) for i in range(39))
"""Reply cuts tried after a clear, on-topic request (0.800-0.990)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Turns:
    """Scored turns: one row per (request, reply) pair."""

    request: np.ndarray
    relevance: np.ndarray
    reply: np.ndarray
    harmful: np.ndarray
    passed: np.ndarray
    """The request passed the input rail (the turns the output rail exists for)."""


def withheld(turns: Turns, rule: ReplyRule | None, base: float) -> np.ndarray:
    """Which turns the output harm rail withholds under `rule` (None: the reply-only cut)."""
    if rule is None:
        return turns.reply >= base
    clear = (turns.request < rule.request_below) & (turns.relevance >= rule.on_topic)
    return turns.reply >= np.where(clear, max(base, rule.clear_cut), base)


def fit(turns: Turns, base: float) -> ReplyRule:
    """The grid's rule that withholds the fewest ordinary answers without withholding fewer harmful
    replies to requests that passed the input rail than the reply-only cut; ties: the rule exempting least."""
    target = turns.harmful & turns.passed
    floor = int(withheld(turns, None, base)[target].sum())
    best: tuple[tuple[float, float, float, float], ReplyRule] | None = None
    for band in REQUEST_BANDS:
        for on_topic in ON_TOPIC:
            for clear_cut in CLEAR_CUTS:
                rule = ReplyRule(request_below=band, on_topic=on_topic, clear_cut=clear_cut)
                held = withheld(turns, rule, base)
                if held[target].sum() < floor:
                    continue
                key = (float(held[~turns.harmful].sum()), clear_cut, band, -on_topic)
                if best is None or key < best[0]:
                    best = (key, rule)
    assert best is not None  # the lowest clear cut is the reply-only cut, which always qualifies
    return best[1]


def score_turns(pairs: Sequence[ReplyPair]) -> Turns:
    """Score every pair as the rails do, with the shipped classifier and the bundled MiniLM."""
    from core.embeddings import shared_sentence_transformer
    from core.encoder import encode
    from core.guard.actions import reply_chunks
    from core.guard.harm import HarmClassifier
    from core.guard.jailbreak import scan_all
    from core.guard.masking import scrub
    from core.guard.settings import GuardConfig

    classifier = HarmClassifier.load()
    model = shared_sentence_transformer()
    requests = encode(model, [scrub(p.request) for p in pairs])
    request_scores = classifier.score(requests.layers)
    replies = {p.reply.id: p.reply.text for p in pairs}
    chunks = {rid: encode(model, reply_chunks(text)) for rid, text in replies.items()}
    reply_scores = {rid: float(classifier.score(c.layers).max()) for rid, c in chunks.items()}
    jailbreak = GuardConfig().jailbreak_threshold
    return Turns(
        request=request_scores,
        relevance=np.array(
            [float((chunks[p.reply.id].sentence @ v).max()) for p, v in zip(pairs, requests.sentence, strict=True)]
        ),
        reply=np.array([reply_scores[p.reply.id] for p in pairs]),
        harmful=np.array([p.reply.harmful for p in pairs]),
        passed=np.array(
            [
                s < classifier.threshold and scan_all(p.request, ()).score < jailbreak
                for p, s in zip(pairs, request_scores, strict=True)
            ]
        ),
    )


def figures(turns: Turns, rule: ReplyRule | None, base: float) -> dict[str, float]:
    held = withheld(turns, rule, base)
    return {
        "harmful_withheld_all": round(float(held[turns.harmful].mean()), 4),
        "harmful_withheld_request_passed": round(float(held[turns.harmful & turns.passed].mean()), 4),
        "ordinary_withheld": round(float(held[~turns.harmful].mean()), 4),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_REPLY_RULE)
    args = parser.parse_args(argv)

    from core.guard.harm import DEFAULT_WEIGHTS, HarmClassifier

    pairs = [p for p in load_reply_pairs() if p.reply.split == "dev"]
    turns = score_turns(pairs)
    base = HarmClassifier.load().output_threshold
    rule = fit(turns, base)
    report: dict[str, object] = {
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m core.guard.training.fit_reply_rule",
        "classifier_sha256": hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest(),
        "rule": rule.as_dict(),
        "rule_statement": (
            "withhold a reply when its worst chunk scores at least clear_cut if the request scored under "
            "request_below and the reply's relevance to it is at least on_topic, else the shipped output cut; "
            "fitted on dev pairs: fewest ordinary answers withheld without withholding fewer harmful replies "
            "to requests that passed the input rail than the reply-only cut"
        ),
        "base_cut": round(base, 4),
        "dev_pairs": {"harmful": int(turns.harmful.sum()), "ordinary": int((~turns.harmful).sum())},
        "dev_reply_only": figures(turns, None, base),
        "dev_request_aware": figures(turns, rule, base),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
