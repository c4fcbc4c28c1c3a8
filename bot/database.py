"""The database every command opens: DATABASE_URL or the embedded Postgres, migrated, as a pool.

Apart from `bot.app` so that commands which only read the database (`usage`, `feedback list`,
`apikey`) start without importing the pipeline, its models and its guardrails.
"""

from __future__ import annotations

import asyncpg

from bot.settings import Settings
from core.store.embedded import start_embedded
from core.store.migrations import migrate
from core.store.pool import create_pool
from core.telemetry import startup_phase


def database_uri(settings: Settings) -> str:
    """DATABASE_URL, or the embedded Postgres under PARLEY_DATA_DIR."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded(settings.parley_data_dir)


async def open_pool(settings: Settings, *, max_size: int = 10) -> asyncpg.Pool:
    """Connect and apply pending migrations (every serving command migrates on start)."""
    with startup_phase("database start"):
        uri = database_uri(settings)
    with startup_phase("migrations"):
        await migrate(uri)
    with startup_phase("database start"):
        return await create_pool(uri, max_size=max_size)
