"""The agent's memory tools: `update_profile`, `forget_me` and `recall_facts`, thin wrappers over
`core.memory.profiles.update_profile`, `core.memory.forget.forget_me` and `core.memory.facts`.

The agent's deps type belongs to `core.agent`; `memory_toolset` takes a function that finds the pool
and the asking person in those deps, so the tools can only ever act on the person of the turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from core.memory import facts
from core.memory.facts import render_fact_history
from core.memory.forget import forget_me
from core.memory.profiles import AnswerStyle, ProfileChanges, update_profile
from core.memory.scope import fact_scope
from core.models import UserKey


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolScope:
    pool: asyncpg.Pool
    user: UserKey


def memory_toolset(scope: Callable[[Any], ToolScope]) -> FunctionToolset[Any]:
    """Tools `update_profile` and `forget_me`; `scope(deps)` gives the pool and the asking person."""

    async def update_profile_tool(
        ctx: RunContext[Any],
        display_name: str | None = None,
        language: str | None = None,
        timezone: str | None = None,
        answer_style: AnswerStyle | None = None,
        voice_replies: bool | None = None,
        about: str | None = None,
    ) -> str:
        """Change how the person wants to be answered from now on, when they ask for it
        ("from now on answer briefly", "call me Sam", "reply in German", "I'm in Berlin time",
        "send me voice replies"). Pass only the fields to change; an empty string clears one.

        Args:
            display_name: What to call the person.
            language: Language to answer in.
            timezone: IANA time zone name, e.g. Europe/Berlin.
            answer_style: "short" or "detailed".
            voice_replies: True to add spoken replies, False to stop them.
            about: Notes the person wants remembered about themselves.
        """
        target = scope(ctx.deps)
        changes = ProfileChanges(
            display_name=display_name,
            language=language,
            timezone=timezone,
            answer_style=answer_style,
            voice_replies=voice_replies,
            about=about,
        )
        profile = await update_profile(target.pool, target.user, changes)
        changed = ", ".join(sorted(changes.assignments())) or "nothing"
        return f"Profile updated ({changed}). Now: {profile}"

    async def forget_me_tool(ctx: RunContext[Any], confirm: bool = False) -> str:
        """Delete everything remembered about the person in this workspace, when they ask to be
        forgotten. Call first with confirm=False: it returns a question to show them. Only after
        they agree in their next message, call again with confirm=True.

        Args:
            confirm: True only when the person has just confirmed the deletion.
        """
        target = scope(ctx.deps)
        outcome = await forget_me(
            target.pool, target.user, confirm=confirm, turn=ctx.run_id or "", now=datetime.now(UTC)
        )
        return outcome.message

    async def recall_facts_tool(ctx: RunContext[Any], about: str = "") -> str:
        """What the person told you about themselves, and when, including facts that were later
        corrected or have expired ("what did I tell you about my team, and when?").

        Args:
            about: Words of the topic (e.g. "team", "holiday"); empty for every fact.
        """
        target = scope(ctx.deps)
        async with fact_scope(target.pool, target.user) as conn:
            found = await facts.listing(conn, target.user, [facts.Home.person(target.user.user_id)], history=True)
        return render_fact_history(found, about=about, now=datetime.now(UTC))

    toolset: FunctionToolset[Any] = FunctionToolset()
    toolset.add_function(update_profile_tool, name="update_profile")
    toolset.add_function(forget_me_tool, name="forget_me")
    toolset.add_function(recall_facts_tool, name="recall_facts")
    return toolset
