"""Slash commands and interactions run once per delivery, however often their signed bytes are sent.

Slack accepts a signature for five minutes (`verify.MAX_AGE_S`), so a command or a click captured in transit
(past TLS: a proxy's log, a debugging dump) could be sent again within them and run again. Slack signs every
delivery afresh, a retry of its own included (new timestamp, new signature), and no one without the signing
secret can sign the same body anew: so a delivery is its signature. Each is claimed in Postgres
(core/requests_seen.py), which every worker and a restarted server share, and kept until its window is surely over.
"""

from __future__ import annotations

from adapters.slack.verify import MAX_AGE_S
from core.requests_seen import first_seen
from core.store.pool import Pool

KEEP_S = 4 * MAX_AGE_S
"""How long a claimed signature is kept: a request is accepted from `MAX_AGE_S` before its timestamp to
`MAX_AGE_S` after it, so up to twice that after it was first seen; doubled again, as the database's clock (which
expires the claims) may differ from this server's (which checks the timestamps)."""


async def first_delivery(pool: Pool, signature: str) -> bool:
    """True the first time `signature` (a verified `X-Slack-Signature`) is seen; False for a replay."""
    return await first_seen(pool, signature, KEEP_S)
