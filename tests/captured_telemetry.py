"""Logs and spans as `parley serve` writes them, captured where a test can read them (the `captured` fixture,
registered for every test by conftest.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pydantic_ai.models
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot import observability


@dataclass
class Captured:
    logs: io.StringIO
    spans: InMemorySpanExporter

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]

    def span_text(self) -> str:
        return "\n".join(
            json.dumps({"name": s.name, "attributes": dict(s.attributes or {}),
                        "events": [dict(e.attributes or {}) for e in s.events]}, default=str)
            for s in self.spans.get_finished_spans()
        )


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """`observability.configure` as `parley serve` runs it, writing logs and spans where we can read them."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    # Slack Bolt names its app logger after the app ("parley") and copies the root level into it when
    # an adapter is built; a test that built one earlier must not silence this test's "parley.*" logs.
    parley = logging.getLogger("parley")
    saved_parley = parley.level
    parley.setLevel(logging.NOTSET)
    monkeypatch.setattr(observability, "_configured", False)
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    result = Captured(logs=io.StringIO(), spans=InMemorySpanExporter())
    observability.configure(
        level="INFO", json_logs=True, stream=result.logs, span_processors=[SimpleSpanProcessor(result.spans)]
    )
    yield result
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    parley.setLevel(saved_parley)
