"""The pydantic-ai agent of a turn and its dependencies.

One Agent per process; the model, instructions, tools and settings of each turn are passed at
run time, so per-workspace choices never need a second agent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from pydantic_ai import Agent

from core.models import ConversationKey, Step, ToolProgress, UserKey

OnTool = Callable[[ToolProgress], Awaitable[None]]


@dataclass(kw_only=True)
class TurnDeps:
    """What a tool may know about the turn it serves."""

    user: UserKey
    conversation: ConversationKey
    pool: asyncpg.Pool | None = None
    steps: list[Step] = field(default_factory=list)
    """Reasoning steps, appended by the tool guard as calls finish."""
    on_tool: OnTool | None = None
    """Told when a tool call is queued, starts and ends (an adapter's progress display)."""
    allow_private_urls: bool = False


def build_agent() -> Agent[TurnDeps, str]:
    return Agent(deps_type=TurnDeps, output_type=str, name="parley", defer_model_check=True)
