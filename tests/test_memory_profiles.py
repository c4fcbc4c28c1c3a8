"""Profiles (properties 25, 49) and the agent's update_profile / forget_me / recall_facts tools."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError
from pydantic_ai import Agent
from pydantic_ai.embeddings import Embedder
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from core.context import render_profile
from core.memory.facts import Home, NewFact, Said, add_fact
from core.memory.forget import ASK_TO_CONFIRM, forget_me
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.memory.scope import fact_scope
from core.memory.service import MemoryConfig, MemoryService
from core.memory.tools import ToolScope, memory_toolset
from core.models import UserKey
from tests.strategies import HashingEmbeddingModel, profile_changes

DB = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def person() -> UserKey:
    return UserKey(platform="discord", workspace_id=f"G{uuid.uuid4().hex[:10]}", user_id="U1")


@DB
@given(first=profile_changes, second=profile_changes)
async def test_p49_profile_changes_persist_for_later_sessions(
    pool: asyncpg.Pool, first: ProfileChanges, second: ProfileChanges
) -> None:
    user = person()
    await update_profile(pool, user, first)
    await update_profile(pool, user, second)
    later = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())  # a new session
    profile = await later.profile(user)
    for field in ("display_name", "language", "timezone", "answer_style", "about"):
        latest = getattr(second, field) if getattr(second, field) is not None else getattr(first, field)
        assert getattr(profile, field) == (latest or None)
    voice = second.voice_replies if second.voice_replies is not None else first.voice_replies
    assert profile.voice_replies is bool(voice)


@DB
@given(changes=profile_changes)
async def test_p25_every_stored_profile_field_reaches_the_prompt_context(
    pool: asyncpg.Pool, changes: ProfileChanges
) -> None:
    user = person()
    await update_profile(pool, user, changes)
    rendered = render_profile(await get_profile(pool, user))
    for value in (changes.display_name, changes.language, changes.timezone, changes.answer_style, changes.about):
        if value:
            assert value in rendered


def test_unknown_time_zones_are_refused() -> None:
    with pytest.raises(ValidationError):
        ProfileChanges(timezone="Mars/Olympus")


async def test_profile_notes_are_masked(pool: asyncpg.Pool) -> None:
    user = person()
    profile = await update_profile(pool, user, ProfileChanges(about="reach me at sam@example.com"))
    assert profile.about == "reach me at [EMAIL]"


@dataclass
class Deps:
    pool: asyncpg.Pool
    user: UserKey


def tool_then_text(tool: str, *calls: dict[str, object]) -> FunctionModel:
    """A model that calls one tool once per args in `calls`, then answers with its last result."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returned = [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
        if len(returned) == len(calls):
            return ModelResponse(parts=[TextPart(str(returned[-1].content))])
        return ModelResponse(parts=[ToolCallPart(tool, calls[len(returned)])])

    return FunctionModel(respond)


def agent() -> Agent[Deps, str]:
    return Agent(deps_type=Deps, toolsets=[memory_toolset(lambda d: ToolScope(pool=d.pool, user=d.user))])


async def test_from_now_on_answer_briefly_updates_the_profile(pool: asyncpg.Pool) -> None:
    user = person()
    result = await agent().run(
        "from now on answer briefly",
        deps=Deps(pool, user),
        model=tool_then_text("update_profile", {"answer_style": "short"}),
    )
    assert "answer_style" in result.output
    assert (await get_profile(pool, user)).answer_style == "short"


async def test_forget_me_asks_first_and_deletes_only_after_a_later_confirmation(pool: asyncpg.Pool) -> None:
    user = person()
    service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    await service.remember(user, "my favourite colour is teal", message_id=None)
    deps = Deps(pool, user)
    asked = await agent().run(
        "forget me", deps=deps, model=tool_then_text("forget_me", {"confirm": False}, {"confirm": True})
    )
    assert asked.output == ASK_TO_CONFIRM  # a confirmation within the asking turn itself does not count
    assert len(await service.recall(user, "colour", k=5)) == 1
    done = await agent().run("yes, forget me", deps=deps, model=tool_then_text("forget_me", {"confirm": True}))
    assert done.output.startswith("Done")
    assert await service.recall(user, "colour", k=5) == []


async def test_a_stale_forget_request_must_be_asked_again(pool: asyncpg.Pool) -> None:
    user = person()
    start = datetime.now(UTC)
    await forget_me(pool, user, confirm=False, turn="t1", now=start)
    late = await forget_me(pool, user, confirm=True, turn="t2", now=start + timedelta(hours=1))
    assert not late.deleted
    assert (await forget_me(pool, user, confirm=True, turn="t3", now=start + timedelta(hours=1, minutes=1))).deleted


async def test_recall_facts_tells_what_the_person_said_and_when_including_superseded_facts(
    pool: asyncpg.Pool,
) -> None:
    user = person()
    said = Said(author_id=user.user_id, channel_id="C1", at=datetime(2026, 11, 2, tzinfo=UTC))
    later = Said(author_id=user.user_id, channel_id="C1", at=datetime(2026, 12, 1, tzinfo=UTC))
    home = Home.person(user.user_id)
    async with fact_scope(pool, user) as conn:
        await add_fact(conn, user, home, NewFact(content="is on the payments team", subject="team"), said)
        await add_fact(conn, user, home, NewFact(content="is on the search team", subject="team"), later)
        await add_fact(conn, user, home, NewFact(content="likes tea"), later)
    result = await agent().run(
        "what did I tell you about my team, and when?",
        deps=Deps(pool, user),
        model=tool_then_text("recall_facts", {"about": "my team"}),
    )
    assert result.output.splitlines() == [
        "- is on the search team: said 2026-12-01 in C1",
        "- is on the payments team: said 2026-11-02 in C1; superseded 2026-12-01",
    ]
