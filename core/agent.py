"""What a turn's tools may know of it: the dependencies core/tool_loop.py hands every tool call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

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

