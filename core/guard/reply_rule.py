"""The output rail's cut when it knows the request: an on-topic answer to a request the input rail read as
clearly ordinary needs a higher reply score to be withheld.

A reply's harm score alone cannot tell a history answer ("why Germany invaded Poland") from harmful
compliance at the cut that catches 95 % of harmful replies (docs/guardrails.md, round 4). The request
can, but only when it says what was asked: a follow-up ("ok, go on") scores as low as any ordinary
request whatever came before it, so the higher cut applies only where the reply is about the request
(its best chunk's sentence vector close to the request's). Without a request (the rail used alone, or
a request the input rail did not score) the shipped cut stands.

The rule's numbers are fitted on the dev replies paired with dev requests
(`python -m core.guard.training.fit_reply_rule`) and ship as `data/reply_rule.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.guard.harm import DATA_DIR

DEFAULT_REPLY_RULE = DATA_DIR / "reply_rule.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplyRule:
    """`clear_cut` replaces the reply cut when the request scored under `request_below` and the reply's
    relevance to it (cosine of sentence vectors) is at least `on_topic`."""

    request_below: float
    on_topic: float
    clear_cut: float

    def cut(self, base: float, request_score: float | None, relevance: float | None) -> float:
        """The reply cut for one turn; `base` is the cut without a request."""
        if request_score is None or relevance is None:
            return base
        if request_score < self.request_below and relevance >= self.on_topic:
            return max(base, self.clear_cut)
        return base

    @classmethod
    def load(cls, path: Path = DEFAULT_REPLY_RULE) -> ReplyRule:
        rule = json.loads(path.read_text(encoding="utf-8"))["rule"]
        return cls(request_below=rule["request_below"], on_topic=rule["on_topic"], clear_cut=rule["clear_cut"])

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
