"""Builders shared by pipeline-level tests: settings against the fake server, unique tenants."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bot import app
from bot.settings import Settings
from core.models import Attachment, Inbound, Reply, ToolProgress
from core.pipeline import Pipeline
from tests.fakes.openai_server import FakeOpenAI
from tests.model_pools import FACTORIES


def settings_for(server: FakeOpenAI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "parley_model": "openai:fake-model",
        "openai_base_url": server.base_url,
        "openai_api_key": "sk-test-key",
        "parley_model_retries": 2,
        "parley_model_timeout": 10,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def build_pipeline(settings: Settings, pool: asyncpg.Pool, **kw: Any) -> Pipeline:
    """bot.app's pipeline with a ModelFactory of its own: one test is one process here. The session closes the
    factory at its end (tests/model_pools.py)."""
    models = app.model_factory(settings)
    if models is not None:
        FACTORIES.append(models)
    return app.build_pipeline(settings, pool, models=models, **kw)


def message(
    text: str,
    *,
    workspace: str | None = None,
    user: str = "U1",
    thread: str = "T1",
    attachments: tuple[Attachment, ...] = (),
    **kw: Any,
) -> Inbound:
    return Inbound(
        platform="console",
        workspace_id=workspace or f"w-{uuid.uuid4().hex[:8]}",
        channel_id="C1",
        thread_id=thread,
        user_id=user,
        text=text,
        event_id=uuid.uuid4().hex,
        attachments=attachments,
        **kw,
    )


@dataclass
class RecordingSink:
    """A ReplySink that records what the turn sent it and answers with `message_ids` (the platform's)."""

    message_ids: Sequence[str] = ()
    streams: bool = True
    deltas: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    tools: list[ToolProgress] = field(default_factory=list)
    finished: list[Reply] = field(default_factory=list)

    async def delta(self, text: str) -> None:
        self.deltas.append(text)

    async def status(self, text: str) -> None:
        self.statuses.append(text)

    async def tool(self, progress: ToolProgress) -> None:
        self.tools.append(progress)

    async def finish(self, reply: Reply) -> Sequence[str]:
        self.finished.append(reply)
        return list(self.message_ids)
