"""End to end with the fake model server: a fact told in one thread reaches the model in another
thread of the same person and workspace, never anyone else's request, and is gone once forgotten."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
import pytest
from pydantic_ai.embeddings import Embedder

from bot.app import Seams
from core.memory.forget import forget_user
from core.memory.service import MemoryConfig, MemoryService
from core.seams import NoGuard, NoMedia
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import build_pipeline, message, settings_for
from tests.strategies import HashingEmbeddingModel

pytestmark = pytest.mark.usefixtures("allow_model_requests")


async def test_a_fact_follows_its_person_across_threads_and_nowhere_else(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    memory = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    pipeline = build_pipeline(
        settings_for(openai_server), pool, seams=Seams(media=NoMedia(), guard=NoGuard(), memory=memory)
    )
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    told = message("my favourite colour is teal", workspace=workspace, user="U1", thread="A")
    await pipeline.run(told)

    async def ask(thread_id: str, *, user_id: str = "U1", workspace_id: str = workspace) -> str:
        question = dataclasses.replace(
            told,
            text="what is my favourite colour?",
            event_id=uuid.uuid4().hex,
            thread_id=thread_id,
            user_id=user_id,
            workspace_id=workspace_id,
        )
        await pipeline.run(question)
        return str(openai_server.requests[-1]["messages"])

    assert "teal" in await ask("B")
    assert "teal" not in await ask("C", user_id="U2")
    assert "teal" not in await ask("D", workspace_id=f"{workspace}-other")
    await forget_user(pool, told.user)
    assert "teal" not in await ask("E")
