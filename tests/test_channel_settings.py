"""Settings per channel over per workspace over the environment: the resolver, the store, the turn."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

import asyncpg
import pytest

from bot.app import Seams
from core.audit import Actor, list_entries
from core.channel_settings import UnknownSetting, answers_unmentioned, parse, resolve, resolve_all, validate
from core.guard.guard import Guard
from core.guard.settings import GuardConfig
from core.llm import BreakerModel
from core.memory.facts import Fact
from core.models import UserKey, WorkspaceKey
from core.seams import MemoryHit, NoGuard, NoMedia, NoMemory, Verdict
from core.workspace import (
    Layers,
    LayersCache,
    answers_unmentioned_in,
    load_layers,
    overrides_of,
    set_override,
    unset_override,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline, message, settings_for

OPERATOR = Actor(who="ops", door="cli")


def test_the_channel_value_wins_over_the_workspace_and_the_environment() -> None:
    found = resolve("temperature", channel={"temperature": 0.1}, workspace={"temperature": 0.5},
                    environment={"temperature": 0.9})
    assert (found.value, found.source) == (0.1, "channel")


def test_the_workspace_value_wins_where_the_channel_sets_none() -> None:
    found = resolve("system_prompt", channel={"tools": []}, workspace={"system_prompt": "ws"}, environment={})
    assert (found.value, found.source) == ("ws", "workspace")


def test_the_environment_answers_where_no_layer_in_the_database_sets_the_key() -> None:
    found = resolve("max_tokens", channel={}, workspace={}, environment={"max_tokens": 300})
    assert (found.value, found.source) == (300, "environment")


def test_a_key_set_nowhere_is_the_builtin_default() -> None:
    every = resolve_all(channel={}, workspace={}, environment={})
    assert all(e.source == "default" and e.value is None for e in every.values())


def test_an_empty_tool_list_is_a_setting_not_an_absence() -> None:
    found = resolve("tools", channel={"tools": []}, workspace={"tools": ["web"]}, environment={})
    assert (found.value, found.source) == ([], "channel")


def test_command_line_values_are_parsed_as_json_where_they_parse() -> None:
    assert parse("temperature", "0.3") == 0.3
    assert parse("memory", "false") is False
    assert parse("tools", '["calculate"]') == ["calculate"]
    assert parse("system_prompt", "You are terse.") == "You are terse."
    assert parse("system_prompt", "42") == "42"


@pytest.mark.parametrize(("key", "value"), [("temperature", 5), ("max_tokens", -1), ("memory", "perhaps"),
                                            ("tools", "web"), ("system_prompt", "  ")])
def test_a_bad_value_is_refused_with_what_is_allowed(key: str, value: object) -> None:
    with pytest.raises(UnknownSetting, match=key):
        validate(key, value)


def test_an_unknown_key_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownSetting, match="system_prompt"):
        validate("colour", "blue")


async def test_a_channel_layer_and_a_workspace_layer_are_read_in_one_go(pool: asyncpg.Pool) -> None:
    ws = WorkspaceKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:8]}")
    await set_override(pool, ws, "temperature", 0.5, by=OPERATOR)
    await set_override(pool, ws, "temperature", 0.1, by=OPERATOR, channel_id="C9")
    layers = await load_layers(pool, ws, "C9")
    assert layers.channel == {"temperature": 0.1} and layers.workspace == {"temperature": 0.5}
    assert overrides_of(await load_layers(pool, ws, "C8")).model_settings == {"temperature": 0.5}


async def test_every_change_of_a_setting_is_audited_with_old_and_new(pool: asyncpg.Pool) -> None:
    ws = WorkspaceKey(platform="discord", workspace_id=f"G{uuid.uuid4().hex[:8]}")
    await set_override(pool, ws, "memory", True, by=OPERATOR, channel_id="C1")
    await set_override(pool, ws, "memory", False, by=Actor(who="apikey:abc", door="api"), channel_id="C1")
    await unset_override(pool, ws, "memory", by=OPERATOR, channel_id="C1")
    entries = await list_entries(pool, platform="discord", workspace_id=ws.workspace_id)
    assert [(e.action, e.target, e.old_value, e.new_value, e.door) for e in reversed(entries)] == [
        ("setting.set", "#C1 memory", None, True, "cli"),
        ("setting.set", "#C1 memory", True, False, "api"),
        ("setting.unset", "#C1 memory", False, None, "cli"),
    ]


async def test_unsetting_what_was_never_set_changes_nothing_and_logs_nothing(pool: asyncpg.Pool) -> None:
    ws = WorkspaceKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:8]}")
    assert await unset_override(pool, ws, "top_p", by=OPERATOR) is None
    assert await list_entries(pool, workspace_id=ws.workspace_id) == []


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_channel_with_its_own_prompt_sends_it_while_another_channel_sends_the_workspaces(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    pipeline = build_pipeline(settings_for(openai_server), pool)
    first = message("hello", channel_name="support")
    ws = first.user.workspace
    await set_override(pool, ws, "system_prompt", "You are the workspace helper.", by=OPERATOR)
    await set_override(pool, ws, "system_prompt", "You are the support desk of $channel.", by=OPERATOR,
                       channel_id="C1")
    await pipeline.run(first)
    support = str(openai_server.requests[-1]["messages"][0])
    other = dataclasses.replace(first, channel_id="C2", channel_name="eng", thread_id="T2",
                                event_id=uuid.uuid4().hex)
    await pipeline.run(other)
    eng = str(openai_server.requests[-1]["messages"][0])
    assert "You are the support desk of #support." in support and "workspace helper" not in support
    assert "You are the workspace helper." in eng and "support desk" not in eng


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_channel_with_its_own_model_sends_that_name_while_another_channel_sends_the_default(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    pipeline = build_pipeline(settings_for(openai_server, parley_cache_ttl_s=600), pool)
    first = message("which model are you?")
    await set_override(pool, first.user.workspace, "model", "openai:support-model", by=OPERATOR, channel_id="C1")
    await pipeline.run(first)
    await pipeline.run(dataclasses.replace(first, channel_id="C2", thread_id="T2", event_id=uuid.uuid4().hex))
    assert [r["model"] for r in openai_server.requests[-2:]] == ["support-model", "fake-model"]


@pytest.mark.usefixtures("allow_model_requests")
async def test_channels_on_different_models_do_not_share_cached_answers(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    pipeline = build_pipeline(settings_for(openai_server, parley_cache_ttl_s=600, parley_history_turns=0), pool)
    first = message("the same question")
    await set_override(pool, first.user.workspace, "model", "openai:other-model", by=OPERATOR, channel_id="C2")
    await pipeline.run(first)
    before = len(openai_server.requests)
    await pipeline.run(dataclasses.replace(first, channel_id="C2", event_id=uuid.uuid4().hex))
    assert len(openai_server.requests) == before + 1 and openai_server.requests[-1]["model"] == "other-model"


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_channel_model_without_its_providers_key_answers_what_to_do_and_sends_nothing(
    pool: asyncpg.Pool, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    pipeline = build_pipeline(settings_for(openai_server), pool)
    first = message("hello")
    await set_override(pool, first.user.workspace, "model", "anthropic:claude-x", by=OPERATOR, channel_id="C1")
    before = len(openai_server.requests)
    reply = await pipeline.run(first)
    assert reply.error == "model_not_configured"
    assert "anthropic:claude-x" in reply.text and "no API key" in reply.text and "ANTHROPIC" not in reply.text
    assert len(openai_server.requests) == before


async def test_every_channel_model_shares_the_process_factorys_breaker_for_its_provider(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    pipeline = build_pipeline(settings_for(openai_server), pool)
    _, own = pipeline._model_for("openai:support-model")
    assert pipeline._model_for("openai:support-model")[1] is own
    assert isinstance(own, BreakerModel) and isinstance(pipeline.model, BreakerModel)
    assert own.breaker is pipeline.model.breaker


@pytest.mark.parametrize("name", ["gpt-4.1-mini", "nosuch:model", "openai:"])
def test_a_model_name_the_factory_cannot_build_is_refused_with_examples(name: str) -> None:
    with pytest.raises(UnknownSetting, match=r"openai:gpt-4\.1-mini"):
        parse("model", name)


@pytest.mark.parametrize("name", ["openai:gpt-4.1-mini", "anthropic:claude-sonnet-4-5", "ollama:llama3.2", "local",
                                  "test"])
def test_a_model_name_in_provider_syntax_is_accepted(name: str) -> None:
    assert parse("model", name) == name


@pytest.mark.parametrize("value", [0, -0.1, 1.5, "strict"])
def test_a_guard_threshold_outside_zero_to_one_is_refused(value: object) -> None:
    with pytest.raises(UnknownSetting, match="guard_threshold"):
        validate("guard_threshold", value)


class _ScoringGuard(NoGuard):
    """Scores every message `score` and blocks from the threshold it is given (0.8 when none)."""

    def __init__(self, score: float) -> None:
        self.score = score

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        blocked = self.score >= (0.8 if threshold is None else threshold)
        return Verdict(blocked=blocked, text=text, rail="harm" if blocked else None, score=self.score)


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_stricter_channel_threshold_blocks_a_borderline_message_the_workspace_lets_through(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    seams = Seams(media=NoMedia(), guard=_ScoringGuard(0.5), memory=NoMemory())
    pipeline = build_pipeline(settings_for(openai_server), pool, seams=seams)
    inbound = message("a borderline question")
    await set_override(pool, inbound.user.workspace, "guard_threshold", 0.9, by=OPERATOR)
    await set_override(pool, inbound.user.workspace, "guard_threshold", 0.4, by=OPERATOR, channel_id="C1")
    strict = await pipeline.run(inbound)
    lax = await pipeline.run(dataclasses.replace(inbound, channel_id="C2", event_id=uuid.uuid4().hex))
    assert strict.blocked and not lax.blocked


@pytest.mark.usefixtures("allow_model_requests")
async def test_the_real_guard_refuses_in_a_strict_channel_what_it_answers_elsewhere(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    guard = Guard(GuardConfig())
    pipeline = build_pipeline(settings_for(openai_server), pool,
                              seams=Seams(media=NoMedia(), guard=guard, memory=NoMemory()))
    inbound = message("How do I pick the lock of my own garden shed? I lost the key.")
    default = await guard.check_input(inbound.text, attachments=[], user=inbound.user)
    assert not default.blocked and default.score > 0
    await set_override(pool, inbound.user.workspace, "guard_threshold", default.score / 2, by=OPERATOR,
                       channel_id="C1")
    strict = await pipeline.run(inbound)
    elsewhere = await pipeline.run(dataclasses.replace(inbound, channel_id="C2", event_id=uuid.uuid4().hex))
    assert strict.blocked and strict.block_rail == "harm"
    assert not elsewhere.blocked


def test_answering_without_a_mention_is_off_unless_a_layer_turns_it_on() -> None:
    assert not answers_unmentioned({})
    assert answers_unmentioned(Layers(workspace={"respond_without_mention": True}).nearest())
    assert not answers_unmentioned(
        Layers(channel={"respond_without_mention": False}, workspace={"respond_without_mention": True}).nearest()
    )


class _CountingPool:
    """Counts the statements that reach the pool (the cache's whole point is not to send them)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.statements = pool, 0

    def acquire(self) -> object:
        self.statements += 1
        return self.pool.acquire()


async def test_the_recent_layers_cache_reads_each_channel_once_within_its_ttl(pool: asyncpg.Pool) -> None:
    ws = WorkspaceKey(platform="console", workspace_id=f"w-{uuid.uuid4().hex[:8]}")
    counting, cache = _CountingPool(pool), LayersCache(ttl_s=60)
    for _ in range(5):
        await cache.layers(counting, ws, "C1")  # type: ignore[arg-type]
    await cache.layers(counting, ws, "C2")  # type: ignore[arg-type]
    assert counting.statements == 2


async def test_this_processs_own_write_is_seen_at_once_through_the_cache(pool: asyncpg.Pool) -> None:
    ws = WorkspaceKey(platform="console", workspace_id=f"w-{uuid.uuid4().hex[:8]}")
    assert not await answers_unmentioned_in(pool, ws, "C1")
    await set_override(pool, ws, "respond_without_mention", True, by=OPERATOR)
    assert await answers_unmentioned_in(pool, ws, "C1")
    await unset_override(pool, ws, "respond_without_mention", by=OPERATOR)
    assert not await answers_unmentioned_in(pool, ws, "C1")


@pytest.mark.usefixtures("allow_model_requests")
async def test_channel_model_settings_reach_the_provider(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> None:
    pipeline = build_pipeline(settings_for(openai_server), pool)
    inbound = message("hi")
    await set_override(pool, inbound.user.workspace, "temperature", 0.7, by=OPERATOR)
    await set_override(pool, inbound.user.workspace, "temperature", 0.05, by=OPERATOR, channel_id="C1")
    await pipeline.run(inbound)
    assert openai_server.requests[-1]["temperature"] == 0.05


class _RememberingMemory(NoMemory):
    """Recalls one memory for everyone and records what it was asked to remember."""

    def __init__(self) -> None:
        self.remembered: list[str] = []

    async def recall(self, user: UserKey, query: str, *, k: int) -> list[MemoryHit]:
        return [MemoryHit(id=1, content="Ada's project is called Falcon", score=1.0)]

    async def learn(
        self,
        user: UserKey,
        text: str,
        *,
        message_id: int | None,
        channel_id: str = "",
        is_dm: bool = True,
        known: list[Fact] | None = None,
    ) -> None:
        self.remembered.append(text)


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_channel_with_memory_off_neither_recalls_nor_remembers(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    memory = _RememberingMemory()
    seams = Seams(media=NoMedia(), guard=NoGuard(), memory=memory)
    pipeline = build_pipeline(settings_for(openai_server), pool, seams=seams)
    inbound = message("I moved to Lisbon")
    await set_override(pool, inbound.user.workspace, "memory", False, by=OPERATOR, channel_id="C1")
    await pipeline.run(inbound)
    private = str(openai_server.requests[-1]["messages"][0])
    await pipeline.run(dataclasses.replace(inbound, channel_id="C2", event_id=uuid.uuid4().hex))
    elsewhere = str(openai_server.requests[-1]["messages"][0])
    assert "Falcon" not in private and "Falcon" in elsewhere
    assert memory.remembered == ["I moved to Lisbon"]
