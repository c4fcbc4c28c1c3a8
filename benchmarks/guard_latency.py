"""Latency the guard adds per message, with warm models: input rails alone, and output rails.

Every text is new to the guard (its feature cache never hits), drawn from Parley's benign and
harmful chat prompts; replies for the output rails are made by joining a few of them. The load
average of the machine is printed too: the rails are CPU-bound, so a busy machine shows. With
`--baseline-weights FILE` (say the previous classifier, `git show main:core/guard/data/harm_classifier.npz`)
a second guard on those weights is timed in the same run, message by message in turn (each on its own
new texts, so neither reads the other's cached features), and the p95 ratio is printed: on a shared
machine that ratio, not the absolute figure, is what compares. `--head` makes the measured guard
score messages with the fine-tuned input head (opt-in, core/guard/head.py) and `--baseline-svm` times
the default, SVM-scored guard alongside it, so the head's cost reads as a ratio. Besides wall times:
CPU per check (the process's CPU time, all its threads), the resident memory the head's weights add
when loaded, and their size on disk. Each reply is checked with the input verdict of its first text,
as a turn does (the request-aware reply cut, core/guard/reply_rule.py); `--baseline-reply-only` times
a guard without that rule alongside.

    python benchmarks/guard_latency.py --json [--messages 300] [--head [--baseline-svm]] [--baseline-weights OLD.npz]
        [--baseline-reply-only]
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

from core.embeddings import one_thread_per_native_pool
from core.guard.guard import Guard, load_head
from core.guard.harm import DEFAULT_HEAD, DEFAULT_WEIGHTS
from core.guard.reply_rule import DEFAULT_REPLY_RULE
from core.guard.settings import GuardConfig
from core.guard.training.data import load_examples
from core.models import UserKey
from core.seams import Verdict

TARGET_P95_MS = 60.0


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def measure(
    messages: int,
    baseline: Path | None = None,
    *,
    head: bool = False,
    baseline_svm: bool = False,
    baseline_reply_only: bool = False,
) -> dict[str, object]:
    import torch

    before_head = rss_mb()
    load_head(DEFAULT_HEAD)
    head_rss_mb = rss_mb() - before_head
    started = time.perf_counter()
    scorer = DEFAULT_HEAD if head else None
    guards = {"shipped": Guard(GuardConfig(head_weights=scorer))}
    if baseline is not None or baseline_svm or baseline_reply_only:
        guards["baseline"] = Guard(
            GuardConfig(
                harm_weights=baseline or DEFAULT_WEIGHTS,
                head_weights=None if baseline_svm else scorer,
                reply_rule=None if baseline_reply_only else DEFAULT_REPLY_RULE,
            )
        )
    for guard in guards.values():
        await guard.warm()
    one_thread_per_native_pool()  # as the server does once everything is loaded (bot/server.py)
    ready_s = time.perf_counter() - started
    texts = [e.text for e in load_examples(SAFETY_DATA) if e.source.startswith("parley") or e.source == "workplace"]
    random.Random(7).shuffle(texts)
    texts = texts[: messages * len(guards)]
    user = UserKey(platform="eval", workspace_id="guard-latency", user_id="bench")
    load_before = os.getloadavg()
    names = list(guards)
    input_ms: dict[str, list[float]] = {name: [] for name in names}
    input_cpu_ms: dict[str, list[float]] = {name: [] for name in names}
    requests: list[Verdict] = []
    for i, text in enumerate(texts):
        name = names[i % len(names)]
        t0, c0 = time.perf_counter(), time.process_time()
        requests.append(await guards[name].check_input(text, attachments=(), user=user))
        input_ms[name].append((time.perf_counter() - t0) * 1000)
        input_cpu_ms[name].append((time.process_time() - c0) * 1000)
    output_ms: dict[str, list[float]] = {name: [] for name in names}
    output_cpu_ms: dict[str, list[float]] = {name: [] for name in names}
    for i in range(0, len(texts) // 3 * 3, 3):
        name = names[(i // 3) % len(names)]
        reply = " ".join(texts[i : i + 3]).replace("?", ".")
        t0, c0 = time.perf_counter(), time.process_time()
        await guards[name].check_output(reply, user=user, request=requests[i])
        output_ms[name].append((time.perf_counter() - t0) * 1000)
        output_cpu_ms[name].append((time.process_time() - c0) * 1000)
    shipped_p95 = percentile(input_ms["shipped"], 0.95) or 0.0
    report: dict[str, object] = {
        "input_scored_by": "head" if head else "svm",
        "input_rails": summary_ms(input_ms["shipped"]),
        "input_rails_cpu": summary_ms(input_cpu_ms["shipped"]),
        "output_rails": summary_ms(output_ms["shipped"]),
        "output_rails_cpu": summary_ms(output_cpu_ms["shipped"]),
        "head_rss_added_mb": round(head_rss_mb, 1),
        "head_weights_on_disk_mb": round(DEFAULT_HEAD.stat().st_size / 1e6, 1),
        "target_p95_ms": TARGET_P95_MS,
        "target_met": shipped_p95 <= TARGET_P95_MS,
    }
    if "baseline" in guards:
        report["baseline"] = {
            "weights": str(baseline or DEFAULT_WEIGHTS),
            "input_scored_by": "head" if head and not baseline_svm else "svm",
            "input_rails": summary_ms(input_ms["baseline"]),
            "input_rails_cpu": summary_ms(input_cpu_ms["baseline"]),
            "reply_rule": not baseline_reply_only,
            "output_rails": summary_ms(output_ms["baseline"]),
            "output_rails_cpu": summary_ms(output_cpu_ms["baseline"]),
            "output_p95_ratio": round(
                (percentile(output_ms["shipped"], 0.95) or 0.0) / (percentile(output_ms["baseline"], 0.95) or 1.0), 3
            ),
            "input_p95_ratio": round(shipped_p95 / (percentile(input_ms["baseline"], 0.95) or 1.0), 3),
            "input_cpu_mean_ratio": round(
                sum(input_cpu_ms["shipped"])
                / len(input_cpu_ms["shipped"])
                / max(sum(input_cpu_ms["baseline"]) / len(input_cpu_ms["baseline"]), 1e-9),
                3,
            ),
        }
    report |= {
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
    parser.add_argument("--messages", type=int, default=300, help="How many messages to time (per guard).")
    parser.add_argument("--baseline-weights", type=Path, help="Time a guard on these classifier weights alongside.")
    parser.add_argument("--head", action="store_true", help="Score messages with the fine-tuned input head.")
    parser.add_argument(
        "--baseline-svm", action="store_true", help="Time a guard whose SVM scores messages (no head) alongside."
    )
    parser.add_argument(
        "--baseline-reply-only",
        action="store_true",
        help="Time a guard whose reply cut ignores the request (no reply rule) alongside.",
    )
    args = parser.parse_args()
    report = asyncio.run(
        measure(
            args.messages,
            args.baseline_weights,
            head=args.head,
            baseline_svm=args.baseline_svm,
            baseline_reply_only=args.baseline_reply_only,
        )
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
