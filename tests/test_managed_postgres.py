"""Parley installs on a managed Postgres whose administrator is not a superuser (RDS, Cloud SQL, Azure, Neon,
Supabase: a role with CREATEROLE and CREATEDB), and serves from it with every wall in place.

The server is one of its own, as a new managed one is: roles belong to a whole server, and the session's
server has Parley's already, made by its superuser. pgvector is not a trusted extension (its control file
says nothing of it), so no owner may create it; managed services create it for their administrator from an
allow-list, which the superuser stands in for here, once, before anything else.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np
import pytest
from pydantic import SecretStr
from pydantic_ai.embeddings import Embedder

from bot.database import app_database_uri, maintenance_database_uri, operator_database_uri
from bot.doctor import Failed, check_database
from bot.settings import Settings
from core.memory import maintenance, store
from core.memory.embedding_backend import BatchingEmbeddingModel
from core.memory.forget import forget_user
from core.memory.service import MemoryConfig, MemoryService
from core.models import UserKey
from core.store.embedded import start_embedded, stop_embedded
from core.store.migrations import pending
from core.store.pool import create_pool
from core.store.tenancy import one_transaction, tenant
from tests.strategies import HashingEmbeddingModel

ADMIN = "admin_like"
TENANT = "SELECT current_setting('parley.workspace_id', true) || '|' || current_setting('parley.user_id', true)"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A new server, as a managed one is before Parley: none of Parley's roles exist. Its superuser's URL."""
    path = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
    yield start_embedded(path)
    stop_embedded(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
async def owner_uri(server: str) -> str:
    """DATABASE_URL of `admin_like`: LOGIN CREATEROLE CREATEDB, no superuser, owner of its database, in
    which the service has created pgvector."""
    parts = urlsplit(server)
    superuser = await asyncpg.connect(server)
    try:
        await superuser.execute(f"CREATE ROLE {ADMIN} LOGIN CREATEROLE CREATEDB NOSUPERUSER")
        await superuser.execute(f"CREATE DATABASE {ADMIN} OWNER {ADMIN}")
    finally:
        await superuser.close()
    in_database = await asyncpg.connect(urlunsplit(parts._replace(path=f"/{ADMIN}")))
    try:
        await in_database.execute("CREATE EXTENSION vector")
    finally:
        await in_database.close()
    return urlunsplit(parts._replace(netloc=f"{ADMIN}@{parts.netloc.rsplit('@', 1)[-1]}", path=f"/{ADMIN}"))


@pytest.fixture(scope="module")
def settings(owner_uri: str) -> Settings:
    return Settings(_env_file=None, database_url=SecretStr(owner_uri))  # type: ignore[call-arg]


@pytest.fixture(scope="module")
async def app_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """What `parley serve` connects with after it has migrated as the owner: the `parley_app` login."""
    pool = await create_pool(await app_database_uri(settings), max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def maintenance_pool(settings: Settings, app_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(await maintenance_database_uri(settings), max_size=1)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def owner_pool(owner_uri: str, app_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """The owner's, as the operator commands (`parley memory forget`, ...) open it."""
    pool = await create_pool(owner_uri, max_size=1)
    yield pool
    await pool.close()


@pytest.fixture
async def service(app_pool: asyncpg.Pool) -> AsyncIterator[MemoryService]:
    svc = MemoryService(app_pool, Embedder(BatchingEmbeddingModel(HashingEmbeddingModel(dims=16))), MemoryConfig())
    await svc.start(reembed_in_background=False)
    yield svc
    await svc.aclose()


def person(workspace: str, user_id: str = "U1") -> UserKey:
    return UserKey(platform="slack", workspace_id=workspace, user_id=user_id)


async def test_the_doctor_asks_nothing_of_the_administrator_before_the_first_migration(settings: Settings) -> None:
    assert (await check_database(settings)).startswith("Postgres ")


async def test_the_doctor_tells_an_owner_without_createrole_that_the_administrator_gives_it(server: str) -> None:
    """Before the first migration too: once the roles exist, their admin option is asked for instead."""
    name = f"owner_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(server)
    superuser = await asyncpg.connect(server)
    try:
        await superuser.execute(f"CREATE ROLE {name} LOGIN NOCREATEROLE")
        await superuser.execute(f"CREATE DATABASE {name} OWNER {name}")
        in_database = await asyncpg.connect(urlunsplit(parts._replace(path=f"/{name}")))
        try:
            await in_database.execute("CREATE EXTENSION vector")
        finally:
            await in_database.close()
        uri = urlunsplit(parts._replace(netloc=f"{name}@{parts.netloc.rsplit('@', 1)[-1]}", path=f"/{name}"))
        with pytest.raises(Failed) as failed:
            await check_database(Settings(_env_file=None, database_url=SecretStr(uri)))  # type: ignore[call-arg]
    finally:
        await superuser.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await superuser.execute(f"DROP ROLE IF EXISTS {name}")
        await superuser.close()
    assert failed.value.fix == (
        "As the service's administrator role (RDS: a member of rds_superuser, Cloud SQL: cloudsqlsuperuser, Azure:"
        f" azure_pg_admin, Neon: neon_superuser) or, on a server of your own, a superuser, run `ALTER ROLE {name}"
        " CREATEROLE;`, or make that administrator role DATABASE_URL's user. (docs/deployment.md, 'Postgres with"
        " pgvector')"
    )


async def test_the_administrator_migrates_a_new_database_and_makes_every_serving_login(
    owner_uri: str, settings: Settings
) -> None:
    await app_database_uri(settings)
    assert await pending(owner_uri) == set()
    logins = [owner_uri, await maintenance_database_uri(settings), await operator_database_uri(settings)]
    for uri in logins:
        assert await privileged(uri) is False


async def privileged(uri: str) -> bool:
    """Whether the user of `uri` is a superuser or bypasses row-level security."""
    conn = await asyncpg.connect(uri)
    try:
        return bool(await conn.fetchval("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"))
    finally:
        await conn.close()


async def test_as_the_app_role_each_person_recalls_their_own_memories_and_no_one_elses(
    app_pool: asyncpg.Pool, service: MemoryService
) -> None:
    workspace = f"T{uuid.uuid4().hex[:8]}"
    alice, bob = person(workspace, "U1"), person(workspace, "U2")
    await service.remember(alice, "my kite is red", message_id=None)
    await service.remember(bob, "my kite is blue", message_id=None)
    assert [hit.content for hit in await service.recall(alice, "what colour is my kite", k=5)] == ["my kite is red"]
    assert [hit.content for hit in await service.recall(bob, "what colour is my kite", k=5)] == ["my kite is blue"]
    async with app_pool.acquire() as conn:  # no tenant named: row-level security shows nothing
        assert await conn.fetchval("SELECT count(*) FROM memories") == 0


async def test_a_recall_inside_a_transaction_leaves_the_callers_tenant(
    app_pool: asyncpg.Pool, service: MemoryService
) -> None:
    workspace = f"T{uuid.uuid4().hex[:8]}"
    alice, colleague = person(workspace, "U1"), person(workspace, "U2")
    async with one_transaction(app_pool, alice.workspace):
        async with tenant(app_pool, colleague):
            pass
        await service.recall(alice, "kite", k=5)
        async with tenant(app_pool, colleague) as conn:
            assert await conn.fetchval(TENANT) == f"{workspace}|U2"


async def test_a_heavy_persons_scope_is_indexed_by_the_maintenance_role_and_walked_by_the_app_role(
    maintenance_pool: asyncpg.Pool, service: MemoryService
) -> None:
    user = person(f"T{uuid.uuid4().hex[:8]}")
    vectors = np.random.default_rng(5).standard_normal((300, 16)).astype(np.float32)
    async with maintenance_pool.acquire() as conn:
        await store.copy_memories(
            conn, [store.copy_record(user, f"kite flight number {i}", v, service.model) for i, v in enumerate(vectors)]
        )
    assert await maintenance.ensure_scope_indexes(maintenance_pool, model=service.model, dimensions=16, min_rows=300)
    assert len(await service.recall(user, "kite flight", k=5)) == 5


async def test_the_owners_operator_commands_work_inside_the_tenancy_wall(
    owner_pool: asyncpg.Pool, service: MemoryService
) -> None:
    user = person(f"T{uuid.uuid4().hex[:8]}")
    await service.remember(user, "my kite is green", message_id=None)
    assert (await forget_user(owner_pool, user))["memories"] == 1
    assert await service.recall(user, "kite", k=5) == []
