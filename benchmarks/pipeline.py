"""Per-turn overhead of Parley's full pipeline against a bare pydantic-ai Agent, side by side.

Both run on the same instant in-process model (pydantic-ai FunctionModel), so what is measured is
everything but the model's own time: for Parley that is dedupe, rate limits, input rails, context
(profile, thread history, memory recall in a workspace holding 100,000 memories, 1,000 of them
the asking person's), output rails and persistence; for the bare agent, pydantic-ai alone. Turns
alternate between the two so machine noise hits both alike. Every question and answer is new text
(a ticket number in each), so no cache (encoder, response) serves a turn that a real person's new
message would not. Prints JSON:

    {"parley": {"p50_ms", "p95_ms", "p99_ms"}, "bare": {...}, "overhead_p95_ms": ..., "ratio_p95": ...,
     "cpu_ms_per_turn": {"parley", "bare"}}

"cpu_ms_per_turn" is this process's CPU (every thread: the event loop, the encoder's, the guard's) while
each kind of turn ran, mean over the measured turns; Postgres's own CPU is not in it. Parley's includes the
background work its turn starts (the memory's learning, waited for after the reply, outside the latency): left
running, it fell into the bare agent's turn that follows. Turns run one at a
time, so the encoder never batches two turns' texts: a lone turn's cost.

With `--delivery-cost` a third kind of turn alternates with the two: Parley's turn on a platform that
returns no message ids, so the turn records no delivery; "delivery_cost_p50_ms" / "..._p95_ms" are
what the delivery INSERT adds to a turn.

With `--stages` spans are recorded (as for an operator's trace backend, which costs CPU of its own) and
"stages" gives each stage's latencies (turn, dedupe, input_rails, context, agent, output_rails, persist,
deliver): where a turn's time goes; compare overheads from runs without it.

Run: python benchmarks/pipeline.py --json [--turns 300] [--memories 100000] [--delivery-cost] [--stages]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import offline_environment, summary_ms

offline_environment()

import numpy as np
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from rich.progress import Progress

from bot.app import build_seams, model_factory, started
from bot.settings import Settings
from core.embeddings import one_thread_per_native_pool
from core.memory import store
from core.models import Inbound, Reply, ToolProgress, UserKey
from evals.sandbox import throwaway_database

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ANSWER = "Sure. Standups are at 9:30 in the Atlas room, and the notes for {ticket} go to #team-notes afterwards."
QUESTIONS = [
    "When is the standup tomorrow?",
    "Can you remind me what we decided about the release train?",
    "What's my preferred answer style again?",
    "Summarise what I told you about the Falcon project.",
    "Which room do we use on Thursdays?",
]
WORDS = [
    "release",
    "deploy",
    "standup",
    "falcon",
    "atlas",
    "budget",
    "review",
    "design",
    "customer",
    "incident",
    "roadmap",
    "hiring",
    "onboarding",
    "offsite",
    "demo",
    "metrics",
    "latency",
    "migration",
]


def answer_to(messages: list[ModelMessage]) -> str:
    """The canned answer, naming the ticket of the question so that every answer is new text."""
    question = next((str(p.content) for m in reversed(messages) for p in m.parts if isinstance(p, UserPromptPart)), "")
    tickets = re.findall(r"ticket \d+", question)
    return ANSWER.format(ticket=tickets[-1] if tickets else "it")


def instant_model() -> FunctionModel:
    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart(answer_to(messages))])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        text = answer_to(messages)
        for start in range(0, len(text), 24):
            yield text[start : start + 24]

    return FunctionModel(answer, stream_function=stream)


async def seed(pool: Any, workspace: str, user: UserKey, memories: int, mine: int, dims: int, model: str) -> None:
    """`memories` rows in the workspace: `mine` for the benchmark user, the rest over 999 colleagues."""
    rng = np.random.default_rng(7)
    text_rng = random.Random(7)
    owners = [user] + [UserKey(platform="bench", workspace_id=workspace, user_id=f"U{i:04d}") for i in range(999)]
    batch = 20_000
    async with pool.acquire() as conn:
        for start in range(0, memories, batch):
            n = min(batch, memories - start)
            vectors = rng.normal(size=(n, dims)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = []
            for i in range(n):
                owner = (
                    owners[0]
                    if (start + i) * mine // memories != (start + i + 1) * mine // memories
                    else owners[1 + (start + i) % 999]
                )
                content = f"note {start + i}: " + " ".join(text_rng.choices(WORDS, k=8))
                rows.append(store.copy_record(owner, content, vectors[i], model))
            await store.copy_memories(conn, rows)
        await conn.execute("ANALYZE memories")


class BenchSink:
    """A platform that shows the stream and posts one message per reply: the turn records its delivery,
    as it does for Slack and Discord."""

    streams = True

    async def delta(self, text: str) -> None:
        return None

    async def status(self, text: str) -> None:
        return None

    async def tool(self, progress: ToolProgress) -> None:
        return None

    async def finish(self, reply: Reply) -> list[str]:
        return [uuid.uuid4().hex]


class UntrackedSink(BenchSink):
    """A platform that returns no message ids: the turn has no delivery to record."""

    async def finish(self, reply: Reply) -> list[str]:
        return []


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # Fact extraction is a second model call after the turn: off, so both sides make one model call a turn
    # (left on, it asked the "test" model for structured output, which that model cannot give).
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        parley_model="test",
        parley_rate_user_per_min=10**6,
        parley_rate_workspace_per_min=10**6,
        parley_fact_extraction=False,
    )
    workspace = "W-bench"
    user = UserKey(platform="bench", workspace_id=workspace, user_id="U-bench")
    model = instant_model()
    bare = Agent(model, instructions="You are a helpful assistant.")
    parley_ms: list[float] = []
    bare_ms: list[float] = []
    parley_cpu_ms: list[float] = []
    bare_cpu_ms: list[float] = []
    untracked_ms: list[float] = []
    spans = record_spans() if args.stages else None
    async with throwaway_database() as pool:
        models = model_factory(settings)
        seams = build_seams(settings, pool, models=models)
        async with started(settings, pool, seams, models=models) as pipeline:
            one_thread_per_native_pool()  # as `parley serve` does once everything is loaded
            pipeline.model = model
            memory = seams.memory_service
            assert memory is not None and memory.dimensions
            with Progress(transient=True, console=None) as progress:
                task = progress.add_task(f"seeding {args.memories:,} memories", total=None)
                await seed(pool, workspace, user, args.memories, args.user_memories, memory.dimensions, memory.model)
                progress.remove_task(task)
                total = args.warmup + args.turns
                task = progress.add_task("turns", total=total)

                for i in range(total):
                    if spans is not None and i == args.warmup:
                        spans.clear()
                    question = f"{QUESTIONS[i % len(QUESTIONS)]} (ticket {i})"
                    if args.delivery_cost:
                        t0 = time.perf_counter()
                        inbound = bench_inbound(user, f"u{i // 10}", f"{question}.")
                        untracked = await pipeline.run(inbound, UntrackedSink())
                        if i >= args.warmup:
                            untracked_ms.append((time.perf_counter() - t0) * 1000)
                        if untracked.error:
                            raise RuntimeError(f"turn failed: {untracked.error}: {untracked.text}")
                    c0, t0 = time.process_time(), time.perf_counter()
                    reply = await pipeline.run(bench_inbound(user, f"t{i // 10}", question), BenchSink())
                    t1 = time.perf_counter()
                    await memory.drain()  # the learning the turn started is the turn's CPU, not the bare agent's
                    c1, t1_bare = time.process_time(), time.perf_counter()
                    async with bare.run_stream(question) as result:
                        async for _ in result.stream_text(delta=True):
                            pass
                    c2, t2 = time.process_time(), time.perf_counter()
                    if reply.error:
                        raise RuntimeError(f"turn failed: {reply.error}: {reply.text}")
                    if i >= args.warmup:
                        parley_ms.append((t1 - t0) * 1000)
                        bare_ms.append((t2 - t1_bare) * 1000)
                        parley_cpu_ms.append((c1 - c0) * 1000)
                        bare_cpu_ms.append((c2 - c1) * 1000)
                    progress.advance(task)
            guard = type(seams.guard).__name__
    p, b = summary_ms(parley_ms), summary_ms(bare_ms)
    p95, bare_p95 = p["p95_ms"] or 0.0, b["p95_ms"] or 0.0
    figures: dict[str, Any] = {
        "parley": p,
        "bare": b,
        "overhead_p95_ms": round(p95 - bare_p95, 2),
        "ratio_p95": round(p95 / bare_p95, 1) if bare_p95 else None,
        "cpu_ms_per_turn": {
            "parley": round(sum(parley_cpu_ms) / len(parley_cpu_ms), 2),
            "bare": round(sum(bare_cpu_ms) / len(bare_cpu_ms), 2),
        },
        "turns": args.turns,
        "memories_in_workspace": args.memories,
        "memories_of_the_user": args.user_memories,
        "guard": guard,
        "target_overhead_p95_ms": 50,
    }
    if spans is not None:
        figures["stages"] = stage_table(spans.get_finished_spans())
    if args.delivery_cost:
        u = summary_ms(untracked_ms)
        figures["without_delivery"] = u
        for q in ("p50", "p95"):
            figures[f"delivery_cost_{q}_ms"] = round((p[f"{q}_ms"] or 0.0) - (u[f"{q}_ms"] or 0.0), 2)
    return figures


def record_spans() -> InMemorySpanExporter:
    """Turn on span recording into memory (before anything logs): what an operator's trace backend gets."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bot import observability

    exporter = InMemorySpanExporter()
    observability.configure(level="WARNING", span_processors=[SimpleSpanProcessor(exporter)])
    return exporter


def stage_table(spans: Sequence[ReadableSpan]) -> dict[str, dict[str, float | None]]:
    """Each pipeline stage's span (a one-word lower-case name; library spans, such as SQL statements named
    by their first keyword, are left out): its latencies in ms, slowest mean first."""
    durations: dict[str, list[float]] = {}
    for span in spans:
        stage = span.name.isidentifier() and not span.name.isupper()
        if stage and span.start_time is not None and span.end_time is not None:
            durations.setdefault(span.name, []).append((span.end_time - span.start_time) / 1e6)
    table = {name: summary_ms(ms) for name, ms in durations.items()}
    return dict(sorted(table.items(), key=lambda item: -(item[1]["mean_ms"] or 0.0)))


def bench_inbound(user: UserKey, thread: str, question: str) -> Inbound:
    return Inbound(
        platform="bench",
        workspace_id=user.workspace_id,
        channel_id="C",
        thread_id=thread,
        user_id=user.user_id,
        text=question,
        event_id=uuid.uuid4().hex,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument(
        "--user-memories",
        type=int,
        default=1_000,
        help="how many of them belong to the person asking (the rest: 999 colleagues)",
    )
    parser.add_argument(
        "--delivery-cost",
        action="store_true",
        help="also time turns that record no delivery, to show what the delivery INSERT costs",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="record spans and add a per-stage table (recording costs CPU: compare overheads without it)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=None if args.json else 2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
