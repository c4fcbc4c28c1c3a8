"""Spans are recorded only when something receives them; trace ids exist either way."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from logfire._internal.integrations import executors
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from bot import observability
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


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`observability.configure` may run again; the root logger, executors and flags come back after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setattr(observability, "_configured", False)
    monkeypatch.setattr(observability, "_recording", observability._recording)
    monkeypatch.setattr(ThreadPoolExecutor, "submit", ThreadPoolExecutor.submit)
    for name in observability.OTLP_ENDPOINTS:
        monkeypatch.delenv(name, raising=False)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_thread_pools_skip_trace_propagation_when_nothing_records(unconfigured: None) -> None:
    observability.configure(level="INFO", stream=io.StringIO())
    assert not observability._recording
    assert ThreadPoolExecutor.submit is executors.submit_t_orig


def test_requests_get_no_opentelemetry_middleware_when_nothing_records(unconfigured: None) -> None:
    observability.configure(level="INFO", stream=io.StringIO())
    app = FastAPI(telemetry=observability.fastapi_telemetry())
    observability.instrument_app(app)
    layers = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert layers == ["RequestContext"]
    assert observability.fastapi_telemetry()["tracing"] is False


def test_requests_get_spans_when_something_records(unconfigured: None) -> None:
    observability.configure(
        level="INFO", stream=io.StringIO(), span_processors=[SimpleSpanProcessor(InMemorySpanExporter())]
    )
    app = FastAPI(telemetry=observability.fastapi_telemetry())
    observability.instrument_app(app)
    assert observability._recording and observability.fastapi_telemetry() == {}
    assert ThreadPoolExecutor.submit is executors.submit_t
