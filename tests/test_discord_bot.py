"""Parley's Discord client end to end: the real discord.py client started by `build_discord`, the
fake Discord gateway and REST API, the fake model server, the real media stage (with the fake
ElevenLabs) and real Postgres."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from adapters.discord import DiscordConfig, ParleyDiscordClient, build_discord
from adapters.discord.feedback import FEEDBACK_DOWN, FEEDBACK_UP
from adapters.discord.invite import fetch_application_id
from bot.app import Seams
from core.audit import Actor, list_entries
from core.media import ElevenLabsConfig, Media, MediaConfig
from core.memory.facts import Home, NewFact, Said, add_fact
from core.memory.profiles import get_profile
from core.memory.scope import fact_scope
from core.models import UserKey, WorkspaceKey
from core.pipeline import Pipeline
from core.seams import NoGuard, NoMemory, Profile
from core.workspace import Layers, load_layers, set_override
from tests.fakes.discord_gateway import Call, FakeDiscord, FakeGuild, Payload
from tests.fakes.elevenlabs import FakeElevenLabs, synthesize
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.pipeline_helpers import build_pipeline, settings_for

TRANSCRIPT = "what is the weather in lisbon"
ClientFactory = Callable[..., AbstractAsyncContextManager[ParleyDiscordClient]]


class ProfilesOnly(NoMemory):
    """The memory seam reduced to profiles (the real table and function): voice replies follow
    `/profile set voice_replies on` without loading an embedding model."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def profile(self, user: UserKey) -> Profile:
        return await get_profile(self.pool, user)


pytestmark = pytest.mark.usefixtures("allow_model_requests")


@pytest.fixture(scope="module")
def eleven() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs(api_key="test-eleven-key", transcript=TRANSCRIPT) as fake:
        yield fake


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord().start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def pipeline(pool: asyncpg.Pool, fake_openai: FakeOpenAI, eleven: FakeElevenLabs) -> Pipeline:
    """The real pipeline: fake model server, real media stage (fake ElevenLabs), real profiles."""
    media = Media(MediaConfig(elevenlabs=ElevenLabsConfig(api_key=eleven.api_key, base_url=eleven.base_url)))
    return build_pipeline(
        settings_for(fake_openai), pool, seams=Seams(media=media, guard=NoGuard(), memory=ProfilesOnly(pool))
    )


@pytest.fixture
def start_client(
    fake: FakeDiscord, pool: asyncpg.Pool, pipeline: Pipeline, openai_server: FakeOpenAI
) -> ClientFactory:
    """Start Parley's client with config overrides; it is logged in and identified on exit of `async with`."""

    @asynccontextmanager
    async def start(shards: int = 1, **overrides: Any) -> AsyncIterator[ParleyDiscordClient]:
        config = DiscordConfig(token=fake.token, api_base=fake.api_base, **overrides)
        client = build_discord(config, pipeline, pool)
        task = asyncio.create_task(client.start())
        try:
            await fake.wait_until_identified(shards)
            yield client
        finally:
            await client.close()
            await asyncio.wait_for(task, 10)

    return start


@pytest.fixture
async def parley(start_client: ClientFactory) -> AsyncIterator[ParleyDiscordClient]:
    async with start_client() as client:
        yield client


@pytest.fixture
async def guild(fake: FakeDiscord, parley: ParleyDiscordClient) -> FakeGuild:
    """A fresh server (unique guild id) that Parley's client has in its cache."""
    created = await fake.add_guild()
    await _until(lambda: parley.get_guild(created.id) is not None)
    return created


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def delivered(pool: asyncpg.Pool, workspace_id: str, event_id: str, timeout: float = 20.0) -> str:
    """The message a turn's reply was recorded with, once the adapter has delivered and noted it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        message_id = await pool.fetchval(
            """SELECT d.message_id FROM turns t JOIN deliveries d ON d.turn_id = t.id
               WHERE t.platform = 'discord' AND t.workspace_id = $1 AND t.event_id = $2 AND d.position = 0""",
            workspace_id,
            event_id,
        )
        if message_id is not None:
            return str(message_id)
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the reply to {event_id} was not delivered")


def replies_to(message: Payload) -> Callable[[Call], bool]:
    return lambda call: str((call.json.get("message_reference") or {}).get("message_id")) == message["id"]


def mention(fake: FakeDiscord, text: str) -> str:
    return f"<@{fake.bot_id}> {text}"


# -- mentions, replies, DMs ----------------------------------------------------------------------


async def test_mention_in_a_channel_is_answered_as_a_reply(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "what is two and two?"), guild_id=guild.id)
    call = await fake.wait_for_call("POST", f"/channels/{guild.channel_id}/messages", where=replies_to(asked))
    await delivered(pool, str(guild.id), asked["id"])
    assert call.json["content"] == "You said: what is two and two?"
    typing = fake.calls_to("POST", f"/channels/{guild.channel_id}/typing")
    assert typing and typing[0].at <= call.at
    assert fake.bot_messages(guild.channel_id)[-1]["content"] == "You said: what is two and two?"


async def test_a_message_without_a_mention_is_left_alone(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    chatter = await fake.post_message(guild.channel_id, ada, "just talking to the team", guild_id=guild.id)
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "and now to you"), guild_id=guild.id)
    await delivered(pool, str(guild.id), asked["id"])
    assert await pool.fetchval("SELECT count(*) FROM turns WHERE event_id = $1", chatter["id"]) == 0
    assert contents(fake.bot_messages(guild.channel_id)) == ["You said: and now to you"]


async def test_a_channel_set_to_answer_without_a_mention_answers_plain_messages(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    workspace = WorkspaceKey(platform="discord", workspace_id=str(guild.id))
    await set_override(pool, workspace, "respond_without_mention", True, by=Actor(who="ops", door="cli"),
                       channel_id=str(guild.channel_id))
    ada = fake.user("Ada")
    asked = await fake.post_message(guild.channel_id, ada, "anyone know the wifi password?", guild_id=guild.id)
    await delivered(pool, str(guild.id), asked["id"])
    assert contents(fake.bot_messages(guild.channel_id)) == ["You said: anyone know the wifi password?"]


async def test_a_reply_to_parley_goes_on_without_a_mention_in_the_same_conversation(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    ada = fake.user("Ada")
    first = await fake.post_message(guild.channel_id, ada, mention(fake, "my project is Falcon"), guild_id=guild.id)
    answer_id = await delivered(pool, str(guild.id), first["id"])
    follow = await fake.post_message(
        guild.channel_id, ada, "what is my project called?", guild_id=guild.id, reply_to=int(answer_id)
    )
    await delivered(pool, str(guild.id), follow["id"])
    threads = await pool.fetch(
        "SELECT DISTINCT thread_id FROM turns WHERE platform = 'discord' AND workspace_id = $1", str(guild.id)
    )
    assert [r["thread_id"] for r in threads] == [first["id"]]
    assert "Falcon" in str(openai_server.requests[-1]["messages"])


async def test_a_direct_message_is_answered(fake: FakeDiscord, parley: ParleyDiscordClient, pool: asyncpg.Pool) -> None:
    bob = fake.user("Bob")
    dm = fake.dm_channel()
    asked = await fake.post_message(dm, bob, "hello in private")
    call = await fake.wait_for_call("POST", f"/channels/{dm}/messages")
    await delivered(pool, "dm", asked["id"])
    assert call.json["content"] == "You said: hello in private"
    turn = await pool.fetchrow("SELECT channel_id, thread_id, user_id FROM turns WHERE event_id = $1", asked["id"])
    assert dict(turn) == {"channel_id": str(dm), "thread_id": str(dm), "user_id": bob["id"]}


async def test_reply_never_pings_everyone_roles_or_other_people(
    fake: FakeDiscord, guild: FakeGuild, openai_server: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    openai_server.queue(Text("@everyone and @here, look: <@&123456789012345678> and <@123456789012345679>"))
    ada = fake.user("Ada")
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "ping them all"), guild_id=guild.id)
    call = await fake.wait_for_call("POST", f"/channels/{guild.channel_id}/messages", where=replies_to(asked))
    assert call.json["allowed_mentions"] == {"parse": [], "users": [int(ada["id"])], "replied_user": True}


async def test_a_rate_limited_post_is_retried_by_discord_py(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    fake.fail_next("POST", f"/channels/{guild.channel_id}/messages", status=429, retry_after=0.05)
    ada = fake.user("Ada")
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "are you there?"), guild_id=guild.id)
    await delivered(pool, str(guild.id), asked["id"])
    posts = fake.calls_to("POST", f"/channels/{guild.channel_id}/messages")
    assert [c.status for c in posts] == [429, 200]


# -- long replies ------------------------------------------------------------------------------


async def test_a_5000_character_answer_arrives_as_messages_of_at_most_2000(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    paragraphs = [f"Paragraph {i}." + " All work and no play makes a dull answer." * 11 for i in range(12)]
    answer = "\n\n".join(paragraphs)
    assert len(answer) >= 5000
    openai_server.queue(Text(answer))
    ada = fake.user("Ada")
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "write a lot"), guild_id=guild.id)
    await delivered(pool, str(guild.id), asked["id"])
    shown = contents(fake.bot_messages(guild.channel_id))
    assert len(shown) >= 3
    assert all(len(m) <= 2000 for m in shown)
    assert "\n\n".join(shown) == answer
    edits: dict[str, list[float]] = {}
    for call in fake.calls_to("PATCH", f"/channels/{guild.channel_id}/messages/"):
        if "content" in (call.json or {}):  # the text's edits are paced; buttons alone (text already final) go at once
            edits.setdefault(call.path, []).append(call.at)
    assert all(b - a >= 0.9 for times in edits.values() for a, b in itertools.pairwise(times))


# -- files and voice -----------------------------------------------------------------------------


async def test_attachments_are_downloaded_and_oversized_ones_named(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    notes = fake.attachment("notes.txt", b"the launch code is banana", content_type="text/plain")
    huge = fake.attachment("huge.bin", b"x", content_type="application/octet-stream") | {"size": 25_000_000}
    ada = fake.user("Ada")
    asked = await fake.post_message(
        guild.channel_id, ada, mention(fake, "read these"), guild_id=guild.id, attachments=[notes, huge]
    )
    call = await fake.wait_for_call("POST", f"/channels/{guild.channel_id}/messages", where=replies_to(asked))
    await delivered(pool, str(guild.id), asked["id"])
    assert "banana" in str(openai_server.requests[-1]["messages"])
    assert "huge.bin" not in str(openai_server.requests[-1]["messages"])
    final = fake.bot_messages(guild.channel_id)[-1]["content"]
    assert "-# ⚠️ huge.bin: too large (25 MB; the limit is 20 MB), not read" in final
    assert call.json["content"].startswith("You said:")


async def test_a_voice_message_in_a_dm_is_transcribed_and_answered(
    fake: FakeDiscord, parley: ParleyDiscordClient, pool: asyncpg.Pool, eleven: FakeElevenLabs
) -> None:
    eleven.reset()
    bob = fake.user("Bob")
    dm = fake.dm_channel()
    voice = fake.attachment("voice-message.ogg", synthesize("hello there", "ogg"), content_type="audio/ogg",
                            voice=True)
    asked = await fake.post_message(dm, bob, "", attachments=[voice], voice=True)
    await delivered(pool, "dm", asked["id"])
    assert TRANSCRIPT in fake.bot_messages(dm)[-1]["content"]
    assert len(eleven.requests_to("/v1/speech-to-text")) == 1


async def test_a_voice_message_in_a_channel_is_answered_only_when_it_replies_to_parley(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    audio = synthesize("hello there", "ogg")
    stray = await fake.post_message(
        guild.channel_id, ada, "", guild_id=guild.id, voice=True,
        attachments=[fake.attachment("voice-message.ogg", audio, content_type="audio/ogg", voice=True)],
    )
    first = await fake.post_message(guild.channel_id, ada, mention(fake, "listen to my next one"), guild_id=guild.id)
    answer_id = await delivered(pool, str(guild.id), first["id"])
    spoken = await fake.post_message(
        guild.channel_id, ada, "", guild_id=guild.id, voice=True, reply_to=int(answer_id),
        attachments=[fake.attachment("voice-message.ogg", audio, content_type="audio/ogg", voice=True)],
    )
    await delivered(pool, str(guild.id), spoken["id"])
    assert TRANSCRIPT in fake.bot_messages(guild.channel_id)[-1]["content"]
    assert await pool.fetchval("SELECT count(*) FROM turns WHERE event_id = $1", stray["id"]) == 0


async def wants_voice(fake: FakeDiscord, bob: Payload, dm: int) -> None:
    setting = await fake.slash(
        "profile", bob, channel_id=dm,
        options=[{"name": "set", "type": 1, "options": [
            {"name": "field", "type": 3, "value": "voice_replies"}, {"name": "value", "type": 3, "value": "on"},
        ]}],
    )
    saved = await fake.wait_for_call("POST", f"/interactions/{setting['id']}/")
    assert saved.json["data"]["content"].startswith("Saved.")


async def test_a_voice_reply_goes_out_as_a_voice_message_with_a_waveform_of_the_audio(
    fake: FakeDiscord, parley: ParleyDiscordClient, pool: asyncpg.Pool
) -> None:
    bob, dm = fake.user("Bob"), fake.dm_channel()
    await wants_voice(fake, bob, dm)
    asked = await fake.post_message(dm, bob, "say something")
    await delivered(pool, "dm", asked["id"])
    await fake.wait_for_call("POST", f"/channels/{dm}/attachments")
    posted = await fake.wait_for_call("POST", f"/channels/{dm}/messages", where=lambda c: bool(c.json.get("flags")))
    assert posted.json["flags"] == 1 << 13 and "content" not in posted.json
    [voice] = [m for m in fake.bot_messages(dm) if m["flags"] & (1 << 13)]
    [audio] = voice["attachments"]
    assert fake.uploads[posted.json["attachments"][0]["uploaded_filename"]].startswith(b"OggS")
    assert audio["duration_secs"] > 0.1
    waveform = base64.b64decode(audio["waveform"])
    assert 1 < len(waveform) <= 256 and max(waveform) == 255 and len(set(waveform)) > 3, "amplitudes of real speech"
    recorded = await pool.fetchval(
        "SELECT turn_id FROM deliveries WHERE platform = 'discord' AND workspace_id = 'dm' AND message_id = $1",
        voice["id"],
    )
    assert recorded is not None, "the voice message belongs to the answer's turn"


async def test_a_refused_voice_message_falls_back_to_the_ogg_file(
    fake: FakeDiscord, parley: ParleyDiscordClient, pool: asyncpg.Pool
) -> None:
    bob, dm = fake.user("Bob"), fake.dm_channel()
    await wants_voice(fake, bob, dm)
    fake.fail_next("POST", f"/channels/{dm}/attachments", status=403)
    asked = await fake.post_message(dm, bob, "say something")
    await delivered(pool, "dm", asked["id"])
    upload = await fake.wait_for_call("POST", f"/channels/{dm}/messages", where=lambda c: bool(c.files))
    assert list(upload.files) == ["parley-reply.ogg"]
    assert upload.files["parley-reply.ogg"].startswith(b"OggS")


# -- reactions -----------------------------------------------------------------------------------


async def test_a_thumbs_up_on_parleys_answer_is_stored_as_feedback_and_other_reactions_are_not(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "rate me"), guild_id=guild.id)
    answer_id = await delivered(pool, str(guild.id), asked["id"])
    answer = fake.messages[int(answer_id)]
    await fake.react(answer, ada, "🎉", guild_id=guild.id)
    await fake.react(asked, ada, "👍", guild_id=guild.id)
    await fake.react(answer, ada, "👍", guild_id=guild.id)

    async def scores() -> list[int]:
        rows = await pool.fetch(
            "SELECT score FROM feedback WHERE platform = 'discord' AND workspace_id = $1", str(guild.id)
        )
        return [r["score"] for r in rows]

    await _until_async(lambda: scores(), lambda found: found == [1])
    await fake.react(answer, ada, "👍", guild_id=guild.id, removed=True)
    await _until_async(lambda: scores(), lambda found: found == [])


async def test_a_thumbs_down_on_the_last_part_of_a_long_answer_rates_the_turn(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Text("word " * 900))
    ada = fake.user("Ada")
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "go long"), guild_id=guild.id)
    await delivered(pool, str(guild.id), asked["id"])
    last = fake.bot_messages(guild.channel_id)[-1]
    await fake.react(last, ada, "👎", guild_id=guild.id)
    query = """SELECT f.score FROM feedback f JOIN turns t ON t.id = f.turn_id
               WHERE t.platform = 'discord' AND t.event_id = $1"""
    await _until_async(lambda: pool.fetchval(query, asked["id"]), lambda score: score == -1)


# -- slash commands ------------------------------------------------------------------------------


async def test_slash_commands_are_synced_on_start(fake: FakeDiscord, parley: ParleyDiscordClient) -> None:
    assert sorted(c["name"] for c in fake.commands) == ["ask", "forget", "help", "memory", "profile", "settings"]
    assert fake.calls_to("PUT", f"/applications/{fake.application_id}/commands")


async def test_slash_ask_streams_the_answer_into_the_interaction(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    used = await fake.slash(
        "ask", ada, channel_id=guild.channel_id, guild_id=guild.id,
        options=[{"name": "question", "type": 3, "value": "how are you?"}],
    )
    deferred = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    assert deferred.json["type"] == 5
    await delivered(pool, str(guild.id), used["id"])
    edit = await fake.wait_for_call("PATCH", f"/webhooks/{fake.application_id}/{used['token']}/messages/@original")
    assert edit.json["content"] == "You said: how are you?"
    assert edit.json["allowed_mentions"] == {"parse": [], "users": [int(ada["id"])]}


async def test_slash_ask_reads_an_attached_file(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    notes = fake.attachment("plan.md", b"# Plan\nShip on Friday.", content_type="text/markdown")
    used = await fake.slash(
        "ask", fake.user("Ada"), channel_id=guild.channel_id, guild_id=guild.id,
        options=[{"name": "question", "type": 3, "value": "when do we ship?"},
                 {"name": "file", "type": 11, "value": notes["id"]}],
        resolved={"attachments": {notes["id"]: notes}},
    )
    await delivered(pool, str(guild.id), used["id"])
    assert "Ship on Friday." in str(openai_server.requests[-1]["messages"])


async def test_slash_help_answers_privately(fake: FakeDiscord, guild: FakeGuild) -> None:
    used = await fake.slash("help", fake.user("Ada"), channel_id=guild.channel_id, guild_id=guild.id)
    call = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    assert call.json["type"] == 4
    assert call.json["data"]["flags"] & 64
    assert "/ask" in call.json["data"]["content"]


async def test_slash_profile_set_rejects_an_unknown_time_zone(fake: FakeDiscord, guild: FakeGuild) -> None:
    used = await fake.slash(
        "profile", fake.user("Ada"), channel_id=guild.channel_id, guild_id=guild.id,
        options=[{"name": "set", "type": 1, "options": [
            {"name": "field", "type": 3, "value": "timezone"}, {"name": "value", "type": 3, "value": "Mars/Olympus"},
        ]}],
    )
    call = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    assert "unknown time zone 'Mars/Olympus'" in call.json["data"]["content"]


async def test_slash_forget_deletes_only_after_the_button_is_pressed(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    user = UserKey(platform="discord", workspace_id=str(guild.id), user_id=ada["id"])
    setting = await fake.slash(
        "profile", ada, channel_id=guild.channel_id, guild_id=guild.id,
        options=[{"name": "set", "type": 1, "options": [
            {"name": "field", "type": 3, "value": "language"}, {"name": "value", "type": 3, "value": "German"},
        ]}],
    )
    await fake.wait_for_call("POST", f"/interactions/{setting['id']}/")
    asked = await fake.slash("forget", ada, channel_id=guild.channel_id, guild_id=guild.id)
    await fake.wait_for_call("POST", f"/interactions/{asked['id']}/")
    assert (await get_profile(pool, user)).language == "German"
    warning = fake.interactions[asked["token"]]
    assert [b["custom_id"] for b in warning["components"][0]["components"]] == [
        "parley:forget:confirm", "parley:forget:cancel",
    ]
    pressed = await fake.click(warning, "parley:forget:confirm", ada, channel_id=guild.channel_id, guild_id=guild.id)
    done = await fake.wait_for_call("POST", f"/interactions/{pressed['id']}/")
    assert done.json["type"] == 7
    assert done.json["data"]["content"].startswith("Done: I forgot everything about you here")
    assert (await get_profile(pool, user)).language is None


# -- threads and shards --------------------------------------------------------------------------


async def test_auto_thread_answers_in_a_new_parley_thread_and_follow_ups_need_no_mention(
    fake: FakeDiscord, start_client: ClientFactory, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    async with start_client(auto_thread=True, gateway_url=fake.gateway_url) as client:
        guild = await fake.add_guild()
        await _until(lambda: client.get_guild(guild.id) is not None)
        ada = fake.user("Ada")
        first = await fake.post_message(guild.channel_id, ada, mention(fake, "my cat is Tom"), guild_id=guild.id)
        thread = await fake.wait_for_call("POST", f"/channels/{guild.channel_id}/messages/{first['id']}/threads")
        assert thread.json["name"] == "my cat is Tom"
        await delivered(pool, str(guild.id), first["id"])
        thread_id = int(first["id"])
        answer = fake.bot_messages(thread_id)[0]
        assert "message_reference" not in answer
        follow = await fake.post_message(thread_id, ada, "what is my cat called?", guild_id=guild.id)
        await delivered(pool, str(guild.id), follow["id"])
        assert "Tom" in str(openai_server.requests[-1]["messages"])
        assert contents(fake.bot_messages(thread_id))[-1] == "You said: what is my cat called?"


async def test_a_reply_chain_moves_into_a_thread_once_it_is_long_enough(
    fake: FakeDiscord, start_client: ClientFactory, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    async with start_client(auto_thread=True, auto_thread_after=2) as client:
        guild = await fake.add_guild()
        await _until(lambda: client.get_guild(guild.id) is not None)
        ada = fake.user("Ada")
        first = await fake.post_message(guild.channel_id, ada, mention(fake, "my dog is Rex"), guild_id=guild.id)
        answer_id = await delivered(pool, str(guild.id), first["id"])
        assert not fake.calls_to("POST", f"/channels/{guild.channel_id}/messages/{first['id']}/threads")
        second = await fake.post_message(
            guild.channel_id, ada, "what is my dog called?", guild_id=guild.id, reply_to=int(answer_id)
        )
        await fake.wait_for_call("POST", f"/channels/{guild.channel_id}/messages/{second['id']}/threads")
        await delivered(pool, str(guild.id), second["id"])
        assert "Rex" in str(openai_server.requests[-1]["messages"])
        assert contents(fake.bot_messages(int(second["id"]))) == ["You said: what is my dog called?"]


async def test_when_discord_refuses_a_thread_parley_answers_in_place(
    fake: FakeDiscord, start_client: ClientFactory, pool: asyncpg.Pool
) -> None:
    async with start_client(auto_thread=True) as client:
        guild = await fake.add_guild()
        await _until(lambda: client.get_guild(guild.id) is not None)
        fake.fail_next("POST", f"/channels/{guild.channel_id}/messages/", status=403)
        ada = fake.user("Ada")
        asked = await fake.post_message(guild.channel_id, ada, mention(fake, "thread please"), guild_id=guild.id)
        call = await fake.wait_for_call("POST", f"/channels/{guild.channel_id}/messages", where=replies_to(asked))
        assert call.json["content"] == "You said: thread please"
        assert [c.status for c in fake.calls_to("POST", f"/messages/{asked['id']}/threads")] == [403]


async def test_in_someone_elses_thread_only_mentions_are_answered(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    thread_id = await fake.add_thread(guild, ada)
    chatter = await fake.post_message(thread_id, ada, "notes to self", guild_id=guild.id)
    asked = await fake.post_message(thread_id, ada, mention(fake, "summarise please"), guild_id=guild.id)
    await delivered(pool, str(guild.id), asked["id"])
    assert contents(fake.bot_messages(thread_id)) == ["You said: summarise please"]
    assert await pool.fetchval("SELECT count(*) FROM turns WHERE event_id = $1", chatter["id"]) == 0
    turn = await pool.fetchrow("SELECT channel_id, thread_id FROM turns WHERE event_id = $1", asked["id"])
    assert dict(turn) == {"channel_id": str(guild.channel_id), "thread_id": str(thread_id)}


async def test_one_process_runs_the_shards_it_is_given(
    fake: FakeDiscord, start_client: ClientFactory, pool: asyncpg.Pool
) -> None:
    async with start_client(shard_ids=(1,), shard_count=2, gateway_url=fake.gateway_url) as client:
        assert fake.identifies[-1]["shard"] == [1, 2]
        guild = await fake.add_guild(shard=1, shards=2)
        await _until(lambda: client.get_guild(guild.id) is not None)
        ada = fake.user("Ada")
        asked = await fake.post_message(guild.channel_id, ada, mention(fake, "hello shard one"), guild_id=guild.id)
        await delivered(pool, str(guild.id), asked["id"])
        assert contents(fake.bot_messages(guild.channel_id)) == ["You said: hello shard one"]


async def test_the_application_id_is_looked_up_from_the_token(fake: FakeDiscord) -> None:
    assert await fetch_application_id(fake.token, api_base=fake.api_base) == str(fake.application_id)


async def _until_async(
    probe: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool], timeout: float = 10.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not accept(await probe()):
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


def contents(messages: list[Payload]) -> list[str]:
    return [str(m["content"]) for m in messages]


# -- feedback buttons ----------------------------------------------------------------------------


async def feedback_rows(pool: asyncpg.Pool, workspace_id: str) -> list[tuple[str, int, str]]:
    rows = await pool.fetch(
        "SELECT user_id, score, source FROM feedback WHERE platform = 'discord' AND workspace_id = $1", workspace_id
    )
    return [(r["user_id"], r["score"], r["source"]) for r in rows]


async def test_an_answer_carries_feedback_buttons_and_a_click_stores_the_rating(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada, bob = fake.user("Ada"), fake.user("Bob")
    asked = await fake.post_message(guild.channel_id, ada, mention(fake, "rate me"), guild_id=guild.id)
    answer = fake.messages[int(await delivered(pool, str(guild.id), asked["id"]))]
    [row] = answer["components"]
    assert [(b["type"], b["custom_id"], b["emoji"]["name"]) for b in row["components"]] == [
        (2, "parley:feedback:up", "👍"), (2, "parley:feedback:down", "👎"),
    ]

    pressed = await fake.click(answer, "parley:feedback:up", bob, channel_id=guild.channel_id, guild_id=guild.id)
    thanked = await fake.wait_for_call("POST", f"/interactions/{pressed['id']}/")
    assert (thanked.json["type"], thanked.json["data"]["flags"]) == (4, 64), "only the clicker sees the thanks"
    assert "helped" in thanked.json["data"]["content"]
    assert await feedback_rows(pool, str(guild.id)) == [(bob["id"], 1, "discord_feedback_button")]

    again = await fake.click(answer, "parley:feedback:down", bob, channel_id=guild.channel_id, guild_id=guild.id)
    await fake.wait_for_call("POST", f"/interactions/{again['id']}/")
    assert await feedback_rows(pool, str(guild.id)) == [(bob["id"], -1, "discord_feedback_button")]


LONGER_THAN_A_RAILS_CHECK = " ".join(["A streamed answer that shows in two writes."] * 6)
"""Typed slowly (`chunk_delay`), this answer passes the output rails' first 160-character check on its own and
is shown in part, then edited to the whole within the edit interval."""


async def test_the_feedback_buttons_ride_on_the_final_edit_of_a_streamed_answer(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Text(LONGER_THAN_A_RAILS_CHECK))
    openai_server.chunk_delay = 0.02
    asked = await fake.post_message(guild.channel_id, fake.user("Ada"), mention(fake, "go on"), guild_id=guild.id)
    answer_id = await delivered(pool, str(guild.id), asked["id"])
    [edit] = fake.calls_to("PATCH", f"/channels/{guild.channel_id}/messages/{answer_id}")
    assert edit.json["content"] == LONGER_THAN_A_RAILS_CHECK
    assert [b["custom_id"] for b in edit.json["components"][0]["components"]] == [FEEDBACK_UP, FEEDBACK_DOWN]


async def test_the_feedback_buttons_ride_on_the_final_edit_of_a_slash_answer(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Text(LONGER_THAN_A_RAILS_CHECK))
    openai_server.chunk_delay = 0.02
    used = await fake.slash(
        "ask", fake.user("Ada"), channel_id=guild.channel_id, guild_id=guild.id,
        options=[{"name": "question", "type": 3, "value": "go on"}],
    )
    await delivered(pool, str(guild.id), used["id"])
    first, final = fake.calls_to("PATCH", f"/webhooks/{fake.application_id}/{used['token']}/messages/@original")
    assert "components" not in first.json
    assert final.json["content"] == LONGER_THAN_A_RAILS_CHECK
    assert [b["custom_id"] for b in final.json["components"][0]["components"]] == [FEEDBACK_UP, FEEDBACK_DOWN]


@pytest.fixture
def refusing_components(fake: FakeDiscord) -> Iterator[FakeDiscord]:
    """The fake Discord refuses every message carrying buttons, as for an app or channel that may not use them."""
    fake.refuse_components = True
    yield fake
    fake.refuse_components = False


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused the rating buttons" in r.getMessage()]


async def test_a_final_edit_whose_buttons_discord_refuses_lands_without_them(
    refusing_components: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, openai_server: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = refusing_components
    caplog.set_level(logging.WARNING, logger="parley.discord")
    openai_server.queue(Text(LONGER_THAN_A_RAILS_CHECK))
    openai_server.chunk_delay = 0.02
    asked = await fake.post_message(guild.channel_id, fake.user("Ada"), mention(fake, "go on"), guild_id=guild.id)
    answer_id = await delivered(pool, str(guild.id), asked["id"])
    refused, landed = fake.calls_to("PATCH", f"/channels/{guild.channel_id}/messages/{answer_id}")
    assert refused.json["components"] and "components" not in landed.json
    assert fake.messages[int(answer_id)]["content"] == LONGER_THAN_A_RAILS_CHECK
    assert len(refusals(caplog)) == 1


async def test_a_feedback_click_under_a_message_parley_did_not_record_stores_nothing(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    stranger = await fake.post_message(guild.channel_id, ada, "not an answer", guild_id=guild.id)
    pressed = await fake.click(stranger, "parley:feedback:up", ada, channel_id=guild.channel_id, guild_id=guild.id)
    answered = await fake.wait_for_call("POST", f"/interactions/{pressed['id']}/")
    assert "nothing was stored" in answered.json["data"]["content"]
    assert await feedback_rows(pool, str(guild.id)) == []


# -- user installs -------------------------------------------------------------------------------


async def test_commands_are_offered_to_user_installs_in_servers_and_every_kind_of_dm(
    fake: FakeDiscord, parley: ParleyDiscordClient
) -> None:
    for command in fake.commands:
        assert sorted(command["integration_types"]) == [0, 1], command["name"]
        assert sorted(command["contexts"]) == [0, 1, 2], command["name"]


async def test_a_user_installed_ask_works_in_a_dm_between_people(
    fake: FakeDiscord, parley: ParleyDiscordClient, pool: asyncpg.Pool
) -> None:
    ada, friends_dm = fake.user("Ada"), fake.dm_channel()
    used = await fake.slash(
        "ask", ada, channel_id=friends_dm, user_install=True, private_channel=True,
        options=[{"name": "question", "type": 3, "value": "what is a snowflake id?"}],
    )
    deferred = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    assert deferred.json["type"] == 5 and not deferred.json.get("data", {}).get("flags")
    await delivered(pool, "dm", used["id"])
    answer = fake.interactions[used["token"]]
    assert answer["content"] == "You said: what is a snowflake id?"
    assert answer["components"], "the answer carries the feedback buttons"
    assert not fake.calls_to("POST", f"/channels/{friends_dm}/messages"), "Parley is no member there"


async def test_a_user_installed_ask_in_a_server_without_parley_answers_privately(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    used = await fake.slash(
        "ask", ada, channel_id=guild.channel_id, guild_id=guild.id, user_install=True,
        options=[{"name": "question", "type": 3, "value": "quietly please"}],
    )
    deferred = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    assert deferred.json["data"]["flags"] & 64, "ephemeral"
    await delivered(pool, str(guild.id), used["id"])
    assert fake.interactions[used["token"]]["content"] == "You said: quietly please"


async def test_slash_settings_set_changes_this_channel_and_is_audited(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    ada = fake.user("Ada")
    used = await fake.slash(
        "settings", ada, channel_id=guild.channel_id, guild_id=guild.id,
        options=[{"name": "set", "type": 1, "options": [
            {"name": "key", "type": 3, "value": "system_prompt"}, {"name": "value", "type": 3, "value": "Be terse."},
        ]}],
    )
    call = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    assert "Saved" in call.json["data"]["content"] and call.json["data"]["flags"] & 64
    workspace = WorkspaceKey(platform="discord", workspace_id=str(guild.id))
    layers = await load_layers(pool, workspace, str(guild.channel_id))
    assert layers.channel == {"system_prompt": "Be terse."} and layers.workspace == {}
    [entry] = await list_entries(pool, platform="discord", workspace_id=str(guild.id))
    assert (entry.actor, entry.door, entry.new_value) == (ada["id"], "discord", "Be terse.")


async def test_slash_settings_is_refused_to_members_who_cannot_manage_the_channel(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    used = await fake.slash(
        "settings", fake.user("Bob"), channel_id=guild.channel_id, guild_id=guild.id, permissions=1 << 11,
        options=[{"name": "set", "type": 1, "options": [
            {"name": "key", "type": 3, "value": "memory"}, {"name": "value", "type": 3, "value": "false"},
        ]}],
    )
    call = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    assert "Only members who can manage this channel" in call.json["data"]["content"]
    workspace = WorkspaceKey(platform="discord", workspace_id=str(guild.id))
    assert await load_layers(pool, workspace, str(guild.channel_id)) == Layers()


MANAGE_CHANNELS, MANAGE_SERVER, SEND_MESSAGES = 1 << 4, 1 << 5, 1 << 11


@pytest.mark.parametrize(("permissions", "saved"), [(MANAGE_CHANNELS | SEND_MESSAGES, False),
                                                    (MANAGE_CHANNELS | MANAGE_SERVER | SEND_MESSAGES, True)])
async def test_the_guard_threshold_of_a_channel_needs_manage_server(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool, permissions: int, saved: bool
) -> None:
    used = await fake.slash(
        "settings", fake.user("Cai"), channel_id=guild.channel_id, guild_id=guild.id, permissions=permissions,
        options=[{"name": "set", "type": 1, "options": [
            {"name": "key", "type": 3, "value": "guard_threshold"}, {"name": "value", "type": 3, "value": "1"},
        ]}],
    )
    call = await fake.wait_for_call("POST", f"/interactions/{used['id']}/")
    workspace = WorkspaceKey(platform="discord", workspace_id=str(guild.id))
    channel = (await load_layers(pool, workspace, str(guild.channel_id))).channel
    if saved:
        assert "Saved" in call.json["data"]["content"] and channel == {"guard_threshold": 1.0}
    else:
        assert "Only workspace admins can change `guard_threshold`" in call.json["data"]["content"]
        assert channel == {}


async def test_slash_memory_lists_the_channel_notes_and_forgets_one(
    fake: FakeDiscord, guild: FakeGuild, pool: asyncpg.Pool
) -> None:
    server = WorkspaceKey(platform="discord", workspace_id=str(guild.id))
    said = Said(author_id="42", channel_id=str(guild.channel_id), at=datetime.now(UTC))
    async with fact_scope(pool, server) as conn:
        home = Home.channel(str(guild.channel_id))
        note = await add_fact(conn, server, home, NewFact(content="deploys are on Fridays"), said)
        await add_fact(conn, server, Home.channel("1"), NewFact(content="not for here"), said)
    ada = fake.user("Ada")
    listed = await fake.slash("memory", ada, channel_id=guild.channel_id, guild_id=guild.id,
                              options=[{"name": "list", "type": 1, "options": []}])
    shown = (await fake.wait_for_call("POST", f"/interactions/{listed['id']}/")).json["data"]["content"]
    assert f"{note} · deploys are on Fridays · this channel, told by 42" in shown and "not for here" not in shown
    forgot = await fake.slash("memory", ada, channel_id=guild.channel_id, guild_id=guild.id,
                              options=[{"name": "forget", "type": 1,
                                        "options": [{"name": "fact_id", "type": 4, "value": note}]}])
    done = await fake.wait_for_call("POST", f"/interactions/{forgot['id']}/")
    assert done.json["data"]["content"] == f"Done: I forgot fact {note}."
