"""benchmarks/locomo_replay.py: saved candidate pools ranked again, graded as the full benchmark grades."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from benchmarks.locomo_replay import SavedQuestion, replay
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
