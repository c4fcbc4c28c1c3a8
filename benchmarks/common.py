"""What every benchmark shares: an offline, telemetry-free environment and one way to read latencies.

Import it before anything heavy and call `offline_environment()`: the variables must be set before
transformers, NeMo or DeepEval are imported.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from core.telemetry import QUIET_ENV

REPO = Path(__file__).resolve().parents[1]
SAFETY_DATA = REPO / "datasets" / "safety"
"""AdvBench, XSTest and Parley's own labelled prompts (datasets/safety/README.md)."""

OFFLINE_ENV = {**QUIET_ENV, "LOGFIRE_IGNORE_NO_CONFIG": "1"}
"""Set in every benchmark process and in the servers they start."""


def offline_environment() -> None:
    """No model download, no telemetry, no tokenizer threads; values already set are kept."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def percentile(samples: Sequence[float], q: float) -> float | None:
    """The nearest-rank q-quantile (0 < q <= 1); None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary_ms(samples_ms: Sequence[float]) -> dict[str, float | None]:
    """n, p50/p95/p99, mean and max of latencies already in milliseconds, rounded to 0.01 ms."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "n": len(samples_ms),
        "p50_ms": rounded(percentile(samples_ms, 0.50)),
        "p95_ms": rounded(percentile(samples_ms, 0.95)),
        "p99_ms": rounded(percentile(samples_ms, 0.99)),
        "mean_ms": rounded(statistics.fmean(samples_ms)) if samples_ms else None,
        "max_ms": rounded(max(samples_ms)) if samples_ms else None,
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was when the run started."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
