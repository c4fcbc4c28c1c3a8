"""Spans are recorded only when something receives them; trace ids exist either way."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from bot.observability import _sample_rate


def test_nothing_is_recorded_when_no_one_reads_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert _sample_rate(None, None, ()) == 0.0


def test_everything_is_recorded_with_a_logfire_token_an_otlp_endpoint_or_a_processor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert _sample_rate(None, "token", ()) == 1.0
    assert _sample_rate(None, None, [SimpleSpanProcessor(InMemorySpanExporter())]) == 1.0
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert _sample_rate(None, None, ()) == 1.0


def test_an_operators_share_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert _sample_rate(0.1, None, ()) == 0.1


def test_an_unrecorded_trace_still_has_an_id_for_the_logs() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBasedTraceIdRatio(0.0))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("parley").start_as_current_span("turn") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid
    assert exporter.get_finished_spans() == ()
