"""Bolt's installation store and OAuth state store on real Postgres (migration 0004)."""

from __future__ import annotations

import uuid

import asyncpg
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation

from adapters.slack.installation import PostgresInstallationStore, PostgresOAuthStateStore


def installation(team: str, *, user: str = "UINSTALLER", token: str = "xoxb-1") -> Installation:
    return Installation(
        app_id="A1",
        team_id=team,
        team_name="Team",
        bot_token=token,
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="chat:write,commands",
        user_id=user,
        custom_values={"plan": "pro"},
    )


async def test_a_saved_installation_is_found_with_its_bot(pool: asyncpg.Pool) -> None:
    store = PostgresInstallationStore(pool, client_id=f"c-{uuid.uuid4().hex[:6]}")
    team = f"T{uuid.uuid4().hex[:8]}"
    await store.async_save(installation(team))
    bot = await store.async_find_bot(enterprise_id=None, team_id=team)
    assert bot is not None and (bot.bot_token, bot.bot_user_id, bot.bot_scopes) == (
        "xoxb-1", "UBOT", ["chat:write", "commands"]
    )
    found = await store.async_find_installation(enterprise_id=None, team_id=team)
    assert found is not None and (found.user_id, found.get_custom_value("plan")) == ("UINSTALLER", "pro")
    assert await store.async_find_bot(enterprise_id=None, team_id="TOTHER") is None


async def test_the_newest_bot_token_wins(pool: asyncpg.Pool) -> None:
    store = PostgresInstallationStore(pool, client_id=f"c-{uuid.uuid4().hex[:6]}")
    team = f"T{uuid.uuid4().hex[:8]}"
    await store.async_save(installation(team, user="UFIRST", token="xoxb-old"))
    await store.async_save_bot(Bot(team_id=team, bot_token="xoxb-new", bot_id="B1", bot_user_id="UBOT",
                                   installed_at=2_000_000_000.0))
    found = await store.async_find_installation(enterprise_id=None, team_id=team, user_id="UFIRST")
    assert found is not None and found.bot_token == "xoxb-new"


async def test_installations_are_separate_per_app_and_deletable(pool: asyncpg.Pool) -> None:
    team = f"T{uuid.uuid4().hex[:8]}"
    mine = PostgresInstallationStore(pool, client_id=f"c-{uuid.uuid4().hex[:6]}")
    other = PostgresInstallationStore(pool, client_id=f"c-{uuid.uuid4().hex[:6]}")
    await mine.async_save(installation(team))
    assert await other.async_find_bot(enterprise_id=None, team_id=team) is None
    await mine.async_delete_all(enterprise_id=None, team_id=team)
    assert await mine.async_find_bot(enterprise_id=None, team_id=team) is None
    assert await mine.async_find_installation(enterprise_id=None, team_id=team) is None


async def test_an_oauth_state_is_consumed_once(pool: asyncpg.Pool) -> None:
    states = PostgresOAuthStateStore(pool, expiration_seconds=60)
    state = await states.async_issue()
    assert await states.async_consume(state)
    assert not await states.async_consume(state)
    assert not await states.async_consume("never-issued")


async def test_an_expired_oauth_state_is_refused(pool: asyncpg.Pool) -> None:
    states = PostgresOAuthStateStore(pool, expiration_seconds=0)
    state = await states.async_issue()
    assert not await states.async_consume(state)
