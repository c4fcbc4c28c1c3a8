"""One-time OAuth `state` values with an expiry (table `slack_oauth_states`, migrations 0004 and 0011), shared by
every instance: an install started on one server may come back to another. The app role issues and consumes them
only through the SECURITY DEFINER functions of migration 0011, which also delete the expired ones."""

from __future__ import annotations

import secrets
from datetime import timedelta

import asyncpg


async def issue(pool: asyncpg.Pool, lifetime: timedelta) -> str:
    """A new state, valid for `lifetime` and for one consumption."""
    state = secrets.token_urlsafe(24)
    await pool.execute("SELECT parley_issue_oauth_state($1, $2::interval)", state, lifetime)
    return state


async def consume(pool: asyncpg.Pool, state: str) -> bool:
    """True once for a state issued here and not yet expired; False for any other, and after."""
    return bool(await pool.fetchval("SELECT parley_consume_oauth_state($1)", state))
