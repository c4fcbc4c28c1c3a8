"""Latency the guard adds per message, with warm models: input rails alone, and output rails.

Every text is new to the guard (its feature cache never hits), drawn from Parley's benign and
harmful chat prompts; replies for the output rails are made by joining a few of them. The load
average of the machine is printed too: the rails are CPU-bound, so a busy machine shows.

    python benchmarks/guard_latency.py --json [--messages 300]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import SAFETY_DATA, offline_environment, percentile, summary_ms

offline_environment()

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.guard.guard import Guard
from core.guard.settings import GuardConfig
from core.guard.training.data import load_examples
from core.models import UserKey

TARGET_P95_MS = 60.0


async def measure(messages: int) -> dict[str, object]:
    import torch

    started = time.perf_counter()
    guard = Guard(GuardConfig())
    await guard.warm()
    ready_s = time.perf_counter() - started
    texts = [e.text for e in load_examples(SAFETY_DATA) if e.source.startswith("parley") or e.source == "workplace"]
    random.Random(7).shuffle(texts)
    texts = texts[:messages]
    user = UserKey(platform="eval", workspace_id="guard-latency", user_id="bench")
    load_before = os.getloadavg()
    input_ms: list[float] = []
    for text in texts:
        t0 = time.perf_counter()
        await guard.check_input(text, attachments=(), user=user)
        input_ms.append((time.perf_counter() - t0) * 1000)
    output_ms: list[float] = []
    for i in range(0, min(len(texts), messages // 3 * 3), 3):
        reply = " ".join(texts[i : i + 3]).replace("?", ".")
        t0 = time.perf_counter()
        await guard.check_output(reply, user=user)
        output_ms.append((time.perf_counter() - t0) * 1000)
    report: dict[str, object] = {
        "input_rails": summary_ms(input_ms),
        "output_rails": summary_ms(output_ms),
        "target_p95_ms": TARGET_P95_MS,
        "target_met": (percentile(input_ms, 0.95) or 0.0) <= TARGET_P95_MS,
        "ready_s": round(ready_s, 2),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "machine": platform.machine(),
        "python": platform.python_version(),
        "language_model_calls": 0,
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Guard latency with warm models.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--messages", type=int, default=300, help="How many messages to time.")
    args = parser.parse_args()
    report = asyncio.run(measure(args.messages))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
