"""benchmarks/locomo_replay.py: saved candidate pools ranked again, graded as the full benchmark grades."""

from __future__ import annotations

import argparse
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import locomo_retrieval
from benchmarks.locomo_replay import SavedQuestion, replay, save_pools
from core.memory.embedding_backend import DEFAULT_EMBEDDING_MODEL
from core.memory.ranking import Candidate, RankWeights, Signals
from core.memory.service import MemoryConfig

ASKED = datetime(2024, 1, 2, tzinfo=UTC)


def candidate(memory_id: int, *, similarity: float, text: float) -> Candidate:
    return Candidate(
        id=memory_id,
        content=f"memory {memory_id}",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        signals=Signals(similarity=similarity, text_score=text),
    )


def question(conversation: str, evidence: tuple[str, ...]) -> SavedQuestion:
    """Memory 1 is close in meaning, memory 2 shares the words; the evidence decides which one counts."""
    return SavedQuestion(
        conversation=conversation,
        category="4",
        text="what did I say?",
        evidence=evidence,
        asked_at=ASKED,
        candidates=(candidate(1, similarity=0.9, text=0.0), candidate(2, similarity=0.1, text=5.0)),
        turns={1: frozenset({"D1:1"}), 2: frozenset({"D1:2"})},
    )


def test_replay_grades_the_top_k_and_the_evidence_the_pool_holds() -> None:
    saved = [question("conv-a", ("D1:1", "D9:9"))]
    result = replay(saved, MemoryConfig(), [1, 2], dev=set())
    assert result["unseen"]["recall"] == {"1": 0.5, "2": 0.5}
    assert result["unseen"]["evidence_in_pool"] == 0.5
    assert "dev" not in result


def test_replay_reports_the_development_conversations_apart() -> None:
    saved = [question("conv-a", ("D1:1",)), question("conv-b", ("D1:2",))]
    result = replay(saved, MemoryConfig(), [1], dev={"conv-a"})
    assert (result["dev"]["conversations"], result["dev"]["recall"]["1"]) == (["conv-a"], 1.0)
    assert (result["unseen"]["conversations"], result["unseen"]["recall"]["1"]) == (["conv-b"], 0.0)


def test_replay_ranks_with_the_weights_it_is_given() -> None:
    saved = [question("conv-a", ("D1:2",))]
    words_only = dataclasses.replace(MemoryConfig(), weights=RankWeights(vector=0.0, text=1.0))
    assert replay(saved, MemoryConfig(), [1], dev=set())["unseen"]["recall"]["1"] == 0.0
    assert replay(saved, words_only, [1], dev=set())["unseen"]["recall"]["1"] == 1.0


def conversation(sample_id: str) -> dict[str, Any]:
    """A small conversation in LoCoMo's shape (made up here: the real data set never enters the repo)."""
    said = [
        ("Ana", "I finally adopted a dog last week, a grey whippet called Pixel."),
        ("Ben", "Congratulations! How is Pixel settling in?"),
        ("Ana", "She sleeps all day and sprints around the park at dusk."),
        ("Ben", "I started a pottery class on Tuesdays, my first bowl cracked in the kiln."),
        ("Ana", "My sister moved to Lisbon for a job at a bike-sharing start-up."),
        ("Ben", "Lisbon is lovely in spring; the hills must be hard on bikes though."),
    ]
    later = [
        ("Ana", "Pixel learned to fetch, but only tennis balls."),
        ("Ben", "My second bowl survived the kiln, I glazed it blue."),
        ("Ana", "I am training for a half marathon in October."),
    ]

    def turns(session: int, lines: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"speaker": who, "text": text, "dia_id": f"D{session}:{i + 1}"} for i, (who, text) in enumerate(lines)]

    questions = [
        ("What kind of dog did Ana adopt?", "D1:1", "1"),
        ("Where did Ana's sister move?", "D1:5", "1"),
        ("What did Ben make in his pottery class?", "D1:4; D2:2", "2"),
        ("What is Ana training for?", "D2:3", "4"),
        ("What does Pixel fetch?", "D2:1", "4"),
    ]
    return {
        "sample_id": sample_id,
        "conversation": {
            "session_1": turns(1, said),
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_2": turns(2, later),
            "session_2_date_time": "10:02 am on 3 June, 2023",
        },
        "qa": [{"question": q, "evidence": [e], "category": c} for q, e, c in questions],
    }


async def test_saved_pools_replay_to_the_full_benchmarks_figures_exactly(pg_uri: str, tmp_path: Path) -> None:
    dev, unseen = f"conv-{uuid.uuid4().hex[:8]}", f"conv-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "conversations.json"
    data.write_text(json.dumps([conversation(dev), conversation(unseen)]))
    args = argparse.Namespace(
        data=data, database_url=pg_uri, embedding_model=DEFAULT_EMBEDDING_MODEL, dev=dev, only="all", reuse=True,
        set=[],
    )
    ks = [1, 2, 5]
    full = await locomo_retrieval.run(args, ks)
    saved = await save_pools(args, MemoryConfig(), ks)
    replayed = replay(saved, MemoryConfig(), ks, {dev})
    assert len(saved) == 10
    for group in ("dev", "unseen"):
        assert replayed[group]["recall"] == full[group]["recall"]
        assert replayed[group]["per_category"] == full[group]["per_category"]
