"""API keys: generation, hashing, constant-time checks, storage, and `parley apikey` (property 52)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bot.cli import apikey
from core.apikeys import (
    ADMIN_LINK,
    ADMIN_SESSION,
    PLAYGROUND_SESSION,
    ApiKeyInfo,
    create_api_key,
    generate_key,
    hash_key,
    key_id_of,
    lapsed,
    list_api_keys,
    revoke_api_key,
    revoke_named,
)
from tests.api_helpers import key_of


def test_generated_keys_are_unique_well_formed_and_verify_against_their_hash() -> None:
    keys = [generate_key() for _ in range(50)]
    assert len({k.key for k in keys}) == 50
    for k in keys:
        assert key_id_of(k.key) == k.key_id
        assert k.key_hash == hash_key(k.key) and k.key.encode() not in k.key_hash


@given(st.text(max_size=120))
def test_p52_arbitrary_text_is_never_a_valid_key(text: str) -> None:
    real = generate_key()
    assert hash_key(text) != real.key_hash or text == real.key


@given(st.integers(min_value=0, max_value=94), st.characters(codec="ascii", exclude_characters="\x00"))
def test_p52_changing_one_character_of_a_key_fails_verification(position: int, char: str) -> None:
    real = generate_key()
    position %= len(real.key)
    tampered = real.key[:position] + char + real.key[position + 1 :]
    assert (hash_key(tampered) == real.key_hash) == (tampered == real.key)


@pytest.mark.parametrize(("name", "age", "outlived"), [
    (ADMIN_LINK, timedelta(minutes=14), None),
    (ADMIN_LINK, timedelta(minutes=16), timedelta(minutes=15)),
    (ADMIN_SESSION, timedelta(hours=11), None),
    (ADMIN_SESSION, timedelta(hours=13), timedelta(hours=12)),
    (PLAYGROUND_SESSION, timedelta(days=31), timedelta(days=30)),
    ("ci", timedelta(days=3650), None),
])
def test_a_sign_in_key_lapses_with_its_link_or_cookie_and_other_keys_never(
    name: str, age: timedelta, outlived: timedelta | None
) -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    key = ApiKeyInfo(key_id="0" * 12, platform="api", workspace_id="W", name=name, created_at=now - age)
    assert lapsed(key, now) == outlived


async def test_keys_are_stored_hashed_authenticated_and_revoked(pool: asyncpg.Pool) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    info, key = await create_api_key(pool, workspace_id=workspace, name="ci")
    stored = await pool.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", info.key_id)
    assert key not in str(dict(stored)) and bytes(stored["key_hash"]) == hash_key(key)
    found = await key_of(pool, key)
    assert found is not None and found.workspace_id == workspace and found.name == "ci"
    assert await key_of(pool, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert [k.key_id for k in await list_api_keys(pool, workspace_id=workspace)] == [info.key_id]
    assert (await list_api_keys(pool, workspace_id=workspace))[0].last_used_at is not None
    assert await revoke_api_key(pool, info.key_id)
    assert not await revoke_api_key(pool, info.key_id)
    assert await key_of(pool, key) is None


async def test_revoke_named_replaces_the_previous_playground_key(pool: asyncpg.Pool) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    _, old = await create_api_key(pool, workspace_id=workspace, name="playground")
    _, kept = await create_api_key(pool, workspace_id=workspace, name="ci")
    assert await revoke_named(pool, workspace_id=workspace, name="playground") == 1
    assert await key_of(pool, old) is None
    assert await key_of(pool, kept) is not None


def test_apikey_cli_creates_lists_and_revokes(cli_env: CliRunner) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    created = cli_env.invoke(apikey.app, ["create", "--workspace", workspace, "--name", "bot"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    key_id = key_id_of(key)
    assert key_id is not None
    listed = cli_env.invoke(apikey.app, ["list", "--workspace", workspace, "--json"])
    rows = json.loads(listed.output)
    assert [(r["key_id"], r["name"], r["revoked_at"]) for r in rows] == [(key_id, "bot", None)]
    assert key not in listed.output
    revoked = cli_env.invoke(apikey.app, ["revoke", key_id])
    assert revoked.exit_code == 0
    again = cli_env.invoke(apikey.app, ["revoke", key_id])
    assert again.exit_code == 1 and "parley apikey list" in again.output


def test_apikey_list_shows_each_moment_to_the_minute_in_utc(cli_env: CliRunner) -> None:
    """16 characters where an ISO stamp with seconds and offset took 25, folded over four lines at 80 columns."""
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    cli_env.invoke(apikey.app, ["create", "--workspace", workspace])
    listed = cli_env.invoke(apikey.app, ["list", "--workspace", workspace], env={"COLUMNS": "200"})
    assert re.search(r"│ \d{4}-\d{2}-\d{2} \d{2}:\d{2} +│", listed.output), listed.output
    assert "+00:00" not in listed.output


async def test_creating_and_revoking_a_key_is_audited_without_the_key(pool: asyncpg.Pool) -> None:
    from core.audit import Actor, list_entries

    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    info, key = await create_api_key(pool, workspace_id=workspace, name="ci", by=Actor(who="ada", door="cli"))
    await revoke_api_key(pool, info.key_id, by=Actor(who="ada", door="cli"))
    entries = await list_entries(pool, workspace_id=workspace)
    assert [(e.action, e.target, e.actor) for e in entries] == [
        ("apikey.revoke", info.key_id, "ada"), ("apikey.create", info.key_id, "ada")]
    assert key not in str(entries)
