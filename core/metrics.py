"""Prometheus metrics of the process (seed properties 35-37, 42, 43): one registry, shared."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TURNS = Counter("parley_turns_total", "Turns handled", ["platform", "outcome"])
TURN_LATENCY = Histogram(
    "parley_turn_latency_seconds",
    "Time from a message arriving to its reply being ready",
    ["platform"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
TOKENS = Counter("parley_tokens_total", "Model tokens", ["direction"])
COST = Counter("parley_cost_usd_total", "Model cost in US dollars")
ERRORS = Counter("parley_errors_total", "Errors by type", ["type"])
CACHE = Counter("parley_cache_requests_total", "Response cache lookups", ["result"])
FEEDBACK = Counter("parley_feedback_total", "Ratings received", ["score"])
GUARD_BLOCKS_PIPELINE = Counter("parley_pipeline_blocks_total", "Turns blocked by a rail", ["stage"])
SHED = Counter("parley_shed_total", "Turns refused at once because the worker was full (load shedding)", ["door"])
