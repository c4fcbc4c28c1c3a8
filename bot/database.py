"""The database every command opens: DATABASE_URL or the embedded Postgres, migrated, as a pool.

Apart from `bot.app` so that commands which only read the database (`usage`, `feedback list`,
`apikey`) start without importing the pipeline, its models and its guardrails.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import asyncpg

from bot.config_check import ConfigError, Problem, shown_url
from bot.settings import Settings
from core.store.embedded import start_embedded
from core.store.migrations import MIGRATIONS_DIR, migrate
from core.store.pool import create_pool
from core.store.roles import MAINTENANCE_ROLE, OPERATOR_ROLE, ensure_app_login
from core.telemetry import startup_phase

log = logging.getLogger(__name__)
APPLICATION_NAME = "parley"
"""`application_name` of a serving process's connections, as pg_stat_activity shows them."""


def database_uri(settings: Settings) -> str:
    """DATABASE_URL, or the embedded Postgres under PARLEY_DATA_DIR."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded(settings.parley_data_dir)


def start_early(settings: Settings) -> None:
    """Start the embedded Postgres in a thread now, while the command imports the rest (seconds), so
    that `open_pool` finds it running. A failure is reported by `open_pool`, which starts it again."""
    if settings.database_url is None:
        threading.Thread(target=_start_quietly, args=(settings,), name="postgres-start", daemon=True).start()


def _start_quietly(settings: Settings) -> None:
    try:
        database_uri(settings)
    except Exception as exc:
        log.debug("early Postgres start failed (open_pool will say why): %s", exc)


async def open_pool(settings: Settings, *, max_size: int = 10) -> asyncpg.Pool:
    """Connect as the owner and apply pending migrations (operator commands: they work across tenants)."""
    with startup_phase("database start"):
        uri = await asyncio.to_thread(database_uri, settings)
    with startup_phase("migrations"):
        report_migrations(await migrate_as_owner(uri, settings))
    with startup_phase("database start"):
        return await create_pool(uri, max_size=max_size)


REFUSED_LOGIN = (
    asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError
)
"""The server answered but refused DATABASE_URL's user, password or database: a setting to fix, not a crash."""


async def migrate_as_owner(uri: str, settings: Settings) -> list[str]:
    """`migrate`, the first connection a command makes: a refused login is DATABASE_URL's problem, said so."""
    try:
        return await migrate(uri)
    except REFUSED_LOGIN as exc:
        if settings.database_url is None:
            raise
        raise ConfigError((Problem(
            variable="DATABASE_URL", value=shown_url(uri), what=f"the server refused it ({exc})",
            fix="correct the user, password and database name in it (the database must exist: CREATE DATABASE)",
        ),)) from None


def report_migrations(applied: list[str]) -> None:
    """Say when a start changed the database's schema: an upgrade should never pass in silence."""
    if not applied:
        return
    total = sum(1 for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql"))
    if len(applied) >= total:
        log.info("Database set up: %d migrations applied", len(applied))
    else:
        log.info("Database upgraded: %d migration(s) applied (%s)", len(applied), ", ".join(sorted(applied)))


async def app_database_uri(settings: Settings) -> str:
    """Migrate as the owner, then the URL a serving process connects with: the non-superuser app role."""
    with startup_phase("database start"):
        owner = await asyncio.to_thread(database_uri, settings)
    with startup_phase("migrations"):
        report_migrations(await migrate_as_owner(owner, settings))
    if settings.parley_database_app_url is not None:
        return settings.parley_database_app_url.get_secret_value()
    return await ensure_app_login(owner)


async def maintenance_database_uri(settings: Settings) -> str:
    """The URL a serving process's memory maintenance connects with: the non-superuser role that owns the
    memory tables (migration 0027), never the owner. Call after `app_database_uri` has migrated."""
    if settings.parley_database_maintenance_url is not None:
        return settings.parley_database_maintenance_url.get_secret_value()
    owner = await asyncio.to_thread(database_uri, settings)
    return await ensure_app_login(owner, MAINTENANCE_ROLE)


async def operator_database_uri(settings: Settings) -> str:
    """The URL the admin API reads across workspaces with: the non-superuser `parley_operator` (migration
    0028), never the owner. Call after `app_database_uri` has migrated."""
    if settings.parley_database_operator_url is not None:
        return settings.parley_database_operator_url.get_secret_value()
    owner = await asyncio.to_thread(database_uri, settings)
    return await ensure_app_login(owner, OPERATOR_ROLE)
