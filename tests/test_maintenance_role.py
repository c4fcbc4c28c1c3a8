"""The memory maintenance of a serving process runs as `parley_maintenance` (migration 0027): no
superuser, no BYPASSRLS, the owner of the two memory tables and of nothing else, yet able to do a whole
round (expiry, per-person index builds, re-embedding, dropping a person's indexes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import numpy as np
import pytest
from pydantic_ai.embeddings import Embedder

from core.memory import maintenance
from core.memory.reembed import reembed
from core.memory.store import content_hash
from core.models import UserKey
from core.store.pool import create_pool
from core.store.roles import MAINTENANCE_ROLE, app_password, app_uri, ensure_app_login
from tests.strategies import HashingEmbeddingModel

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def maintenance_pool(pg_uri: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(await ensure_app_login(pg_uri, MAINTENANCE_ROLE), max_size=2)
    yield pool
    await pool.close()


async def seed(pool: asyncpg.Pool, user: UserKey, *, rows: int, model: str, created_at: datetime) -> None:
    vectors = np.random.default_rng(3).standard_normal((rows, 8)).astype(np.float32)
    await pool.executemany(
        "INSERT INTO memories (platform, workspace_id, user_id, content, content_hash, embedding, embedding_model,"
        " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                user.platform,
                user.workspace_id,
                user.user_id,
                f"note {i}",
                content_hash(f"note {i}"),
                v,
                model,
                created_at,
            )
            for i, v in enumerate(vectors)
        ],
    )


def person() -> UserKey:
    return UserKey(platform="slack", workspace_id=f"T{uuid.uuid4().hex[:10]}", user_id="U1")


def test_the_maintenance_login_has_its_own_password_derived_from_the_owners() -> None:
    owner = "postgresql://owner:s3cret@db.example:5432/parley"
    assert app_uri(owner, MAINTENANCE_ROLE).startswith("postgresql://parley_maintenance:")
    assert app_uri(owner, MAINTENANCE_ROLE).endswith("@db.example:5432/parley")
    assert app_password(owner, MAINTENANCE_ROLE) not in (None, app_password(owner))


async def test_the_maintenance_role_is_no_superuser_and_reads_no_other_table(maintenance_pool: asyncpg.Pool) -> None:
    role = await maintenance_pool.fetchrow(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
    )
    assert role is not None and not any(role.values())
    for table in ("turns", "messages", "api_keys", "profiles", "guard_events", "slack_installations"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await maintenance_pool.fetch(f"SELECT 1 FROM {table} LIMIT 1")


async def test_a_whole_maintenance_round_runs_as_the_maintenance_role(
    pool: asyncpg.Pool, maintenance_pool: asyncpg.Pool
) -> None:
    expired, large = person(), person()
    model = f"test-maintenance-{uuid.uuid4().hex[:8]}"
    await seed(pool, expired, rows=2, model=model, created_at=LONG_AGO)
    await seed(pool, large, rows=5, model=model, created_at=datetime.now(UTC))

    assert await maintenance.delete_expired(maintenance_pool, before=datetime(2000, 6, 1, tzinfo=UTC)) >= 2
    [index] = await maintenance.ensure_scope_indexes(maintenance_pool, model=model, dimensions=8, min_rows=5)
    assert await reembed(maintenance_pool, Embedder(HashingEmbeddingModel(dims=8)), workspace=large.workspace) == 5
    assert await maintenance.drop_scope_indexes(maintenance_pool, large) == 1

    left = await pool.fetch(
        "SELECT workspace_id FROM memories WHERE workspace_id = ANY($1::text[])",
        [expired.workspace_id, large.workspace_id],
    )
    assert {r["workspace_id"] for r in left} == {large.workspace_id}
    assert await pool.fetchval("SELECT to_regclass($1)", index) is None
