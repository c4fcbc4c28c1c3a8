"""Reactions and ratings stored as feedback of the turn they rate (seed properties 38, 41)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from core.feedback import list_feedback, record_feedback, score_of
from core.models import Reaction
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import RecordingSink, build_pipeline, message, settings_for

pytestmark = pytest.mark.usefixtures("allow_model_requests")


@pytest.mark.parametrize(
    ("emoji", "score"),
    [("+1", 1), ("thumbsup", 1), ("👍", 1), ("+1::skin-tone-3", 1), ("-1", -1), ("thumbsdown", -1), ("👎", -1),
     ("👍🏽", 1), ("heart", None), ("tada", None)],
)
def test_only_thumbs_count_as_ratings(emoji: str, score: int | None) -> None:
    assert score_of(emoji) == score


async def answered_turn(pool: asyncpg.Pool, server: FakeOpenAI) -> tuple[str, int]:
    """A turn delivered in two messages, msg-1 and msg-2 (a reply split in two)."""
    pipeline = build_pipeline(settings_for(server), pool)
    inbound = message("rate me")
    reply = await pipeline.run(inbound, RecordingSink(message_ids=["msg-1", "msg-2"]))
    assert reply.turn_id is not None
    return inbound.workspace_id, reply.turn_id


async def test_p38_a_thumbs_up_on_a_reply_is_stored_with_its_turn_and_time(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    workspace, turn_id = await answered_turn(pool, openai_server)
    pipeline = build_pipeline(settings_for(openai_server), pool)
    found = await pipeline.react(Reaction(platform="console", workspace_id=workspace, user_id="U9",
                                          platform_message_id="msg-1", emoji="+1"))
    assert found == turn_id
    rows = [r for r in await list_feedback(pool, datetime.now(UTC) - timedelta(minutes=5)) if r.turn_id == turn_id]
    assert [(r.score, r.user_id, r.source) for r in rows] == [(1, "U9", "+1")]
    assert rows[0].created_at <= datetime.now(UTC)


async def test_removing_a_reaction_withdraws_the_rating(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> None:
    workspace, turn_id = await answered_turn(pool, openai_server)
    pipeline = build_pipeline(settings_for(openai_server), pool)
    reaction = Reaction(platform="console", workspace_id=workspace, user_id="U9",
                        platform_message_id="msg-2", emoji="-1")
    await pipeline.react(reaction)
    await pipeline.react(dataclasses.replace(reaction, removed=True))
    assert await pool.fetchval("SELECT count(*) FROM feedback WHERE turn_id = $1", turn_id) == 0


async def test_a_reaction_on_someone_elses_message_is_ignored(pool: asyncpg.Pool) -> None:
    from bot.settings import Settings

    pipeline = build_pipeline(Settings(_env_file=None), pool)  # type: ignore[call-arg]
    assert await pipeline.react(Reaction(platform="console", workspace_id="w", user_id="U",
                                         platform_message_id="not-ours", emoji="+1")) is None


async def test_p41_a_later_rating_replaces_the_earlier_one(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> None:
    workspace, turn_id = await answered_turn(pool, openai_server)
    for score in (1, -1):
        await record_feedback(pool, platform="console", workspace_id=workspace, user_id="U1", turn_id=turn_id,
                              score=score, source="api")
    assert await pool.fetchval("SELECT score FROM feedback WHERE turn_id = $1", turn_id) == -1


async def test_a_score_other_than_plus_or_minus_one_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="score"):
        await record_feedback(pool, platform="console", workspace_id="w", user_id="u", turn_id=1, score=5,
                              source="api")


async def test_an_api_reply_is_rated_by_its_turn_id_with_no_delivery_recorded(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    pipeline = build_pipeline(settings_for(openai_server), pool)
    inbound = dataclasses.replace(message("rate me over the API"), platform="api")
    reply = await pipeline.run(inbound, RecordingSink(message_ids=[]))
    assert reply.turn_id is not None
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE turn_id = $1", reply.turn_id) == 0
    rating = Reaction(platform="api", workspace_id=inbound.workspace_id, user_id="U9",
                      platform_message_id=str(reply.turn_id), emoji="-1")
    assert await pipeline.react(rating) == reply.turn_id
    assert await pipeline.react(dataclasses.replace(rating, workspace_id="W-elsewhere")) is None


@pytest.mark.parametrize("message_id", ["999999999", "not-a-turn", "9" * 40])
async def test_an_api_rating_of_a_turn_that_is_not_in_the_workspace_is_ignored(
    pool: asyncpg.Pool, openai_server: FakeOpenAI, message_id: str
) -> None:
    pipeline = build_pipeline(settings_for(openai_server), pool)
    rating = Reaction(platform="api", workspace_id="W-elsewhere", user_id="U9", platform_message_id=message_id,
                      emoji="+1")
    assert await pipeline.react(rating) is None
