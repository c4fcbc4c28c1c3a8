"""benchmarks/pipeline.py --stages: each pipeline stage's span latencies, library spans left out."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan

from benchmarks.pipeline import stage_table


def span(name: str, ms: float) -> ReadableSpan:
    return ReadableSpan(name=name, start_time=1_000_000, end_time=1_000_000 + int(ms * 1e6))


def test_the_stage_table_times_each_stage_slowest_first_without_sql_statements() -> None:
    spans = [span("context", 4), span("agent", 2), span("context", 6), span("SELECT", 9), span("chat test", 9)]
    table = stage_table(spans)
    assert list(table) == ["context", "agent"]
    assert (table["context"]["n"], table["context"]["mean_ms"], table["agent"]["p95_ms"]) == (2, 5.0, 2.0)
