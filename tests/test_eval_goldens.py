"""The datasets the suite runs: valid, big enough, consistent with Parley's tools, sampled stably."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.app import build_registry
from bot.settings import Settings
from evals.goldens import (
    DATASETS_DIR,
    PAGES_PLACEHOLDER,
    ConversationGolden,
    MemoryGolden,
    QualityGolden,
    ToolGolden,
    load_jsonl,
    load_safety,
    spread,
)
from evals.suites import SAFETY_SOURCES, SUITES, SuiteName, plan_suite

EVALS = DATASETS_DIR / "evals"


def test_the_datasets_have_the_promised_sizes() -> None:
    quality = load_jsonl(EVALS / "quality.jsonl", QualityGolden)
    conversations = load_jsonl(EVALS / "conversations.jsonl", ConversationGolden)
    tools = load_jsonl(EVALS / "tools.jsonl", ToolGolden)
    memory = load_jsonl(EVALS / "memory.jsonl", MemoryGolden)
    assert len(quality) >= 50
    assert len(conversations) >= 20
    assert len(tools) >= 20
    assert len(memory) >= 10
    assert sum(1 for q in quality if q.documents) >= 15, "faithfulness needs goldens with context"
    assert all(len(c.turns) >= 2 for c in conversations)


def test_golden_ids_are_unique_across_files() -> None:
    ids = [
        *(g.id for g in load_jsonl(EVALS / "quality.jsonl", QualityGolden)),
        *(g.id for g in load_jsonl(EVALS / "conversations.jsonl", ConversationGolden)),
        *(g.id for g in load_jsonl(EVALS / "tools.jsonl", ToolGolden)),
        *(g.id for g in load_jsonl(EVALS / "memory.jsonl", MemoryGolden)),
    ]
    assert len(ids) == len(set(ids))


def test_tool_goldens_name_only_registered_tools_and_existing_pages() -> None:
    registered = set(build_registry(Settings(_env_file=None)).names)  # type: ignore[call-arg]
    tools = load_jsonl(EVALS / "tools.jsonl", ToolGolden)
    assert {name for t in tools for name in t.expected_tools} <= registered
    assert any(not t.expected_tools for t in tools), "some goldens must need no tool at all"
    pages = {m for t in tools for m in re.findall(r"\{pages\}/([\w.-]+)", t.input)}
    assert pages and all((EVALS / "pages" / page).is_file() for page in pages)
    assert all(PAGES_PLACEHOLDER in t.input for t in tools if "fetch_url" in t.expected_tools)


def test_every_dataset_file_is_named_in_the_readme_with_its_licence() -> None:
    readme = (EVALS / "README.md").read_text()
    for path in EVALS.glob("*.jsonl"):
        assert path.name in readme
    assert "Apache-2.0" in readme
    for name in ("AdvBench", "XSTest", "MIT", "CC-BY-4.0"):
        assert name in readme


def test_safety_sets_are_read_from_the_guard_folder_with_labels() -> None:
    by_source = load_safety(DATASETS_DIR / "safety")
    assert set(by_source) == set(SAFETY_SOURCES)
    assert len(by_source["advbench"]) == 520
    assert {p.label for p in by_source["advbench"]} == {"harmful"}
    assert {p.label for p in by_source["xstest-safe"]} == {"benign"}
    assert {p.label for p in by_source["xstest-unsafe"]} == {"harmful"}
    assert {p.label for p in by_source["parley-benign"]} == {"benign"}


def test_a_bad_line_is_reported_with_its_file_and_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "input": "hi"}\n\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
        load_jsonl(path, QualityGolden)


@given(st.lists(st.integers(), max_size=60), st.integers(min_value=0, max_value=80))
def test_spread_picks_n_distinct_items_in_order(items: list[int], n: int) -> None:
    indexed = list(enumerate(items))
    picked = spread(indexed, n)
    assert len(picked) == min(n, len(items))
    assert picked == sorted(set(picked))
    assert spread(indexed, n) == picked


def test_suites_pick_the_same_goldens_every_time() -> None:
    first = plan_suite(SUITES[SuiteName.SMOKE], DATASETS_DIR)
    second = plan_suite(SUITES[SuiteName.SMOKE], DATASETS_DIR)
    assert first == second
    assert first.quality and first.conversation and first.tools and first.safety and not first.memory
    assert {p.label for p in first.safety} == {"harmful", "benign"}


def test_the_release_suite_runs_everything() -> None:
    plan = plan_suite(SUITES[SuiteName.RELEASE], DATASETS_DIR)
    assert len(plan.quality) >= 50 and len(plan.conversation) >= 20 and len(plan.tools) >= 20
    assert len(plan.memory) >= 10
    assert len(plan.safety) == sum(len(v) for v in load_safety(DATASETS_DIR / "safety").values())
