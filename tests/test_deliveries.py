"""The turn owns its delivery (issue #15): it streams through the adapter's sink, finishes it once, and
records which platform messages carry the reply, so reactions and "is Parley in this thread" are core
queries on one table."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
import pytest

from bot.app import Seams
from core import deliveries
from core.models import ConversationKey, Reaction, Reply, WorkspaceKey
from core.pipeline import Pipeline
from core.seams import NoGuard, NoMedia, NoMemory
from core.sink import THINKING
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.pipeline_helpers import RecordingSink, build_pipeline, message, settings_for

pytestmark = pytest.mark.usefixtures("allow_model_requests")


@pytest.fixture
def pipeline(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> Pipeline:
    return build_pipeline(settings_for(openai_server), pool)


async def test_every_message_of_a_reply_finds_its_turn(pipeline: Pipeline, pool: asyncpg.Pool) -> None:
    inbound = message("split me")
    reply = await pipeline.run(inbound, RecordingSink(message_ids=["m-1", "m-2", "m-3"]))
    workspace = inbound.user.workspace
    found = [await deliveries.find(pool, workspace, m) for m in ("m-1", "m-2", "m-3")]
    assert {d.turn_id for d in found if d is not None} == {reply.turn_id}
    assert all(d is not None and (d.channel_id, d.thread_id) == ("C1", "T1") for d in found)
    assert await deliveries.find(pool, workspace, "m-4") is None


async def test_a_message_id_of_another_workspace_finds_nothing(pipeline: Pipeline, pool: asyncpg.Pool) -> None:
    await pipeline.run(message("mine"), RecordingSink(message_ids=["shared-id"]))
    assert await deliveries.find(pool, WorkspaceKey(platform="console", workspace_id="other"), "shared-id") is None


async def test_parley_is_in_a_thread_once_it_has_answered_there(pipeline: Pipeline, pool: asyncpg.Pool) -> None:
    inbound = message("hello", thread="T-in")
    assert not await deliveries.in_conversation(pool, inbound.conversation)
    await pipeline.run(inbound, RecordingSink(message_ids=["m-in"]))
    assert await deliveries.in_conversation(pool, inbound.conversation)
    elsewhere = ConversationKey(platform="console", workspace_id=inbound.workspace_id, channel_id="C1", thread_id="T2")
    assert not await deliveries.in_conversation(pool, elsewhere)


async def test_a_reaction_on_the_second_chunk_rates_the_turn(pipeline: Pipeline) -> None:
    inbound = message("long answer")
    reply = await pipeline.run(inbound, RecordingSink(message_ids=["m-a", "m-b"]))
    rated = await pipeline.react(Reaction(platform="console", workspace_id=inbound.workspace_id, user_id="U2",
                                          platform_message_id="m-b", emoji="👍"))
    assert rated == reply.turn_id


async def test_a_duplicate_event_is_neither_answered_nor_delivered_again(pipeline: Pipeline) -> None:
    inbound = message("once")
    first, again = RecordingSink(message_ids=["m-once"]), RecordingSink(message_ids=["m-twice"])
    await pipeline.run(inbound, first)
    duplicate = await pipeline.run(inbound, again)
    assert duplicate.duplicate
    assert len(first.finished) == 1 and again.finished == [] and again.deltas == []


async def test_the_sink_hears_thinking_then_each_tool_step(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    openai_server.queue(ToolCalls([("calculate", {"expression": "6*7"})]), Text("42", 30, 3))
    sink = RecordingSink(message_ids=["m-tool"])
    reply = await pipeline.run(message("what is 6*7?"), sink)
    assert sink.statuses == [THINKING]
    assert [(p.tool, p.status) for p in sink.tools if p.status != "pending"] == [
        ("calculate", "in_progress"), ("calculate", "complete")
    ]
    assert sink.finished == [reply] and reply.text == "42"


async def test_a_message_with_nothing_in_it_is_claimed_without_asking_the_model(
    pipeline: Pipeline, openai_server: FakeOpenAI
) -> None:
    """Only files that could not be downloaded: the adapter's notes are the whole reply, sent once."""
    inbound = message("   ")
    sink = RecordingSink(message_ids=["m-notes"])
    reply = await pipeline.run(inbound, sink)
    assert reply.error == "empty_message" and reply.text == ""
    assert sink.finished == [reply] and openai_server.requests == []
    assert (await pipeline.run(inbound, RecordingSink())).duplicate


async def test_a_sink_that_does_not_stream_gets_only_the_finished_reply(pipeline: Pipeline) -> None:
    sink = RecordingSink(message_ids=["m-whole"], streams=False)
    reply = await pipeline.run(message("whole please"), sink)
    assert sink.deltas == [] and sink.finished == [reply]


async def test_a_reply_the_sink_could_not_place_is_still_stored(pipeline: Pipeline, pool: asyncpg.Pool) -> None:
    """A platform that returns no message ids (a terminal) records no delivery; the turn is stored all the same."""
    inbound = message("nowhere to react")
    reply = await pipeline.run(inbound, RecordingSink())
    assert reply.turn_id is not None
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE turn_id = $1", reply.turn_id) == 0
    assert await pool.fetchval("SELECT status FROM turns WHERE id = $1", reply.turn_id) == "answered"


def cached_pipeline(pool: asyncpg.Pool, server: FakeOpenAI) -> Pipeline:
    """The cache on, memory off (a remembered first message would change the second request)."""
    seams = Seams(media=NoMedia(), guard=NoGuard(), memory=NoMemory())
    return build_pipeline(settings_for(server, parley_cache_ttl_s=60), pool, seams=seams)


async def test_p39_a_cached_reply_streams_through_the_sink(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> None:
    """Turning the cache on never turns streaming off: a hit plays its stored text into the sink."""
    pipeline = cached_pipeline(pool, openai_server)
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    openai_server.chunk_delay = 0.005
    openai_server.queue(Text("A fairly long answer that streams. " * 12))
    fresh, cached = RecordingSink(), RecordingSink()
    first = await pipeline.run(message("cache and stream", workspace=workspace, thread="x1"), fresh)
    second = await pipeline.run(message("cache and stream", workspace=workspace, thread="x2"), cached)
    assert len(openai_server.requests) == 1 and pipeline.cache_stats.hits == 1
    assert openai_server.requests[0].get("stream") is True
    assert "".join(fresh.deltas) == first.text and len(fresh.deltas) > 1
    assert "".join(cached.deltas) == second.text == first.text
    assert cached.finished == [second]


async def test_p39_a_reply_cached_without_streaming_streams_on_a_hit(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    pipeline = cached_pipeline(pool, openai_server)
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    plain = await pipeline.run(message("cache me plainly", workspace=workspace, thread="y1"))
    sink = RecordingSink()
    streamed = await pipeline.run(message("cache me plainly", workspace=workspace, thread="y2"), sink)
    assert len(openai_server.requests) == 1
    assert "".join(sink.deltas) == streamed.text == plain.text


def _reply_of(sink: RecordingSink) -> Reply:
    [reply] = sink.finished
    return reply


async def test_a_retried_event_after_a_finished_turn_keeps_its_first_delivery(
    pipeline: Pipeline, pool: asyncpg.Pool
) -> None:
    inbound = message("keep me")
    first = RecordingSink(message_ids=["m-first"])
    await pipeline.run(inbound, first)
    await pipeline.run(dataclasses.replace(inbound), RecordingSink(message_ids=["m-second"]))
    turn = _reply_of(first).turn_id
    assert [r["message_id"] for r in await pool.fetch(
        "SELECT message_id FROM deliveries WHERE turn_id = $1", turn)] == ["m-first"]
