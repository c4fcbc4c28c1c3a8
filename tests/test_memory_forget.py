"""Forgetting, export, history (property 50) and the `parley memory|profile|history` commands."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai.embeddings import Embedder
from typer.testing import CliRunner

from core.memory.conversations import user_history
from core.memory.forget import export_user, forget_user
from core.memory.profiles import ProfileChanges, update_profile
from core.memory.service import MemoryConfig, MemoryService
from core.models import UserKey
from core.store.pool import create_pool
from tests.strategies import HashingEmbeddingModel, memory_texts

T = TypeVar("T")


def person() -> UserKey:
    return UserKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:10]}", user_id="U1")


async def a_turn(pool: asyncpg.Pool, user: UserKey, text: str, *, thread: str = "th") -> int:
    """A turn as the pipeline leaves it: turn, user and assistant messages, usage, feedback."""
    turn_id: int = await pool.fetchval(
        "INSERT INTO turns (platform, workspace_id, channel_id, thread_id, user_id) VALUES ($1, $2, 'C', $3, $4)"
        " RETURNING id",
        user.platform,
        user.workspace_id,
        thread,
        user.user_id,
    )
    for role, content in (("user", text), ("assistant", f"reply to {text}")):
        await pool.execute(
            "INSERT INTO messages (platform, workspace_id, channel_id, thread_id, user_id, role, content, turn_id)"
            " VALUES ($1, $2, 'C', $3, $4, $5, $6, $7)",
            user.platform,
            user.workspace_id,
            thread,
            user.user_id,
            role,
            content,
            turn_id,
        )
    await pool.execute(
        "INSERT INTO usage (turn_id, platform, workspace_id, user_id, model, input_tokens, output_tokens)"
        " VALUES ($1, $2, $3, $4, 'm', 10, 5)",
        turn_id,
        user.platform,
        user.workspace_id,
        user.user_id,
    )
    await pool.execute(
        "INSERT INTO feedback (platform, workspace_id, user_id, turn_id, score, source)"
        " VALUES ($1, $2, $3, $4, 1, 't')",
        user.platform,
        user.workspace_id,
        user.user_id,
        turn_id,
    )
    return turn_id


async def test_forget_user_deletes_every_row_of_the_person_in_one_go(pool: asyncpg.Pool) -> None:
    user, neighbour = person(), person()
    service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    for who in (user, neighbour):
        await a_turn(pool, who, "my favourite colour is teal")
        await service.remember(who, "my favourite colour is teal", message_id=None)
        await update_profile(pool, who, ProfileChanges(language="Dutch"))
    await service.drain()
    counts = await forget_user(pool, user)
    assert {k: v for k, v in counts.items() if v} == {
        "memories": 1,
        "facts": 1,
        "profiles": 1,
        "feedback": 1,
        "usage": 1,
        "messages": 2,
        "turns": 1,
    }
    exported = await export_user(pool, user)
    assert all(rows == [] for key, rows in exported.items() if isinstance(rows, list))
    assert len((await export_user(pool, neighbour))["messages"]) == 2


async def test_export_holds_the_persons_rows_as_json(pool: asyncpg.Pool) -> None:
    user = person()
    await a_turn(pool, user, "I live in Porto")
    service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    await service.remember(user, "I live in Porto", message_id=None)
    await service.drain()
    exported = json.loads(json.dumps(await export_user(pool, user)))
    assert [m["content"] for m in exported["memories"]] == ["I live in Porto"]
    assert [(f["content"], f["scope"]) for f in exported["facts"]] == [("lives in Porto", "person")]
    assert "embedding" not in exported["memories"][0]
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["turns"][0]["steps"] == []


async def test_forgetting_an_author_keeps_their_shared_notes_anonymised_and_export_lists_them(
    pool: asyncpg.Pool,
) -> None:
    user = person()
    colleague = UserKey(platform=user.platform, workspace_id=user.workspace_id, user_id="U2")
    service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
    await service.remember(
        user, "remember for this channel: deploys are on Fridays", message_id=None, channel_id="C7", is_dm=False
    )
    await service.remember(user, "I'm on the payments team", message_id=None, channel_id="C7", is_dm=False)
    await service.remember(user, "I'm on the search team", message_id=None, channel_id="C7", is_dm=False)
    await service.drain()
    exported = json.loads(json.dumps(await export_user(pool, user)))
    assert [f["content"] for f in exported["shared_facts_told"]] == ["deploys are on Fridays"]
    assert sorted(f["content"] for f in exported["facts"]) == ["is on the payments team", "is on the search team"]

    counts = await forget_user(pool, user)
    assert (counts["facts"], counts["shared facts anonymised"]) == (2, 1)
    [note] = await service.facts(colleague, channel_id="C7", is_dm=False)
    assert (note.content, note.author_id) == ("deploys are on Fridays", None)
    assert (await export_user(pool, user))["shared_facts_told"] == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), memory_texts), min_size=1, max_size=8))
async def test_p50_the_complete_history_comes_back_in_order(pool: asyncpg.Pool, turns: list[tuple[str, str]]) -> None:
    user = person()
    for thread, text in turns:
        await a_turn(pool, user, text, thread=thread)
    everything = await user_history(pool, user)
    assert [m.content for m in everything] == [c for _, t in turns for c in (t, f"reply to {t}")]
    for thread in {t for t, _ in turns}:
        in_thread = await user_history(pool, user, thread_id=thread)
        assert [m.content for m in in_thread] == [c for th, t in turns if th == thread for c in (t, f"reply to {t}")]
    assert [m.content for m in await user_history(pool, user, limit=1)] == [f"reply to {turns[-1][1]}"]


# --- the commands -----------------------------------------------------------------------------


def on_db(pg_uri: str, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Run `work` with its own pool and loop: the commands run their own `asyncio.run`, so their
    tests are synchronous."""

    async def main() -> T:
        pool = await create_pool(pg_uri, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def test_memory_forget_asks_unless_yes(pg_uri: str, cli_env: CliRunner) -> None:
    from bot.cli.memory import app

    user = person()
    on_db(pg_uri, lambda pool: a_turn(pool, user, "hello"))
    args = ["forget", "--platform", user.platform, "--workspace", user.workspace_id, "--user", user.user_id]
    declined = cli_env.invoke(app, args, input="n\n")
    assert declined.exit_code == 1
    assert len(on_db(pg_uri, lambda pool: export_user(pool, user))["messages"]) == 2
    done = cli_env.invoke(app, [*args, "--yes"])
    assert done.exit_code == 0, done.output
    assert "messages" in done.output
    assert on_db(pg_uri, lambda pool: export_user(pool, user))["messages"] == []


def test_a_declined_forget_says_nothing_was_deleted(cli_env: CliRunner) -> None:
    from bot.cli.memory import app

    user = person()
    declined = cli_env.invoke(
        app, ["forget", "--platform", user.platform, "--workspace", user.workspace_id, "--user", user.user_id],
        input="n\n",
    )
    assert declined.exit_code == 1
    assert declined.output.rstrip().endswith("Nothing deleted.")


def test_memory_export_and_history_commands(pg_uri: str, cli_env: CliRunner) -> None:
    from bot.cli.history import app as history_app
    from bot.cli.memory import app as memory_app

    user = person()
    on_db(pg_uri, lambda pool: a_turn(pool, user, "the launch is on Friday", thread="T9"))
    exported = cli_env.invoke(memory_app, ["export", "-p", user.platform, "-w", user.workspace_id, "-u", user.user_id])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["messages"][0]["content"] == "the launch is on Friday"
    shown = cli_env.invoke(history_app, ["--workspace", user.workspace_id, "--user", user.user_id, "--json"])
    assert shown.exit_code == 0, shown.output
    lines = [json.loads(line) for line in shown.output.splitlines()]
    assert [(m["thread_id"], m["role"]) for m in lines] == [("T9", "user"), ("T9", "assistant")]


def test_profile_set_then_show(cli_env: CliRunner) -> None:
    from bot.cli.profile import app

    user = person()
    key = ["-p", user.platform, "-w", user.workspace_id, "-u", user.user_id]
    changed = cli_env.invoke(app, ["set", *key, "--style", "short", "--timezone", "Europe/Berlin", "--voice"])
    assert changed.exit_code == 0, changed.output
    shown = json.loads(cli_env.invoke(app, ["show", *key]).output)
    assert (shown["answer_style"], shown["timezone"], shown["voice_replies"]) == ("short", "Europe/Berlin", True)
    assert cli_env.invoke(app, ["set", *key, "--timezone", "Nowhere/Else"]).exit_code == 2


def test_memory_cleanup_command_reports_what_it_deleted(cli_env: CliRunner) -> None:
    from bot.cli.memory import app

    result = cli_env.invoke(app, ["cleanup", "--days", "36500"])
    assert result.exit_code == 0, result.output
    assert "memories older than 36500 days deleted" in result.output


def test_memory_list_shows_facts_and_with_history_the_superseded_ones(
    pg_uri: str, cli_env: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.memory import app, out

    monkeypatch.setattr(out, "width", 160)

    user = person()

    async def tell(pool: asyncpg.Pool) -> None:
        service = MemoryService(pool, Embedder(HashingEmbeddingModel()), MemoryConfig())
        for text in (
            "Hi, I'm Sam. What's 17% of 2,340?",
            "and in euros?",
            "I'm on the payments team",
            "I'm on the search team",
        ):
            await service.remember(user, text, message_id=None)
        await service.drain()

    on_db(pg_uri, tell)
    where = ["-p", user.platform, "-w", user.workspace_id, "-u", user.user_id]
    now = cli_env.invoke(app, ["list", *where])
    assert now.exit_code == 0, now.output
    assert "is called Sam" in now.output and "is on the search team" in now.output
    assert "payments" not in now.output and "euros" not in now.output
    past = cli_env.invoke(app, ["list", *where, "--history"])
    assert "is on the payments team" in past.output and "superseded" in past.output
