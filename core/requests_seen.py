"""Platform deliveries already run, each claimed once (table `slack_requests_seen`, migration 0036).

A signed request can be captured in transit and sent again within its window, and a platform may deliver an
event more than once; the adapter names each delivery by a key it cannot be forged past (a Slack signature, or
`event:` and Slack's `event_id`) and runs it only if the claim is its first. Claims live in Postgres, so every
worker and a restarted server share them, and are kept for `keep_s` seconds, the adapter's to choose. The app
role claims only through the SECURITY DEFINER function of migration 0036, which also deletes the expired claims.
"""

from __future__ import annotations

import asyncpg


async def first_seen(pool: asyncpg.Pool, key: str, keep_s: int) -> bool:
    """True the first time `key` is claimed within `keep_s` seconds; False for every later claim."""
    return bool(await pool.fetchval("SELECT parley_first_slack_request($1, $2)", key, keep_s))
