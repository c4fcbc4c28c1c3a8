"""Every Slack delivery runs once, however often its signed bytes are sent and however often Slack retries it.

Slack accepts a signature for five minutes (`verify.MAX_AGE_S`), so a request captured in transit (past TLS: a
proxy's log, a debugging dump) could be sent again within them and run again. Each delivery is claimed in
Postgres (core/requests_seen.py), which every worker and a restarted server share, and kept until its window is
surely over; a claim that is not the first is acknowledged and does nothing.

Commands and interactions are claimed by their signature: Slack signs every delivery afresh, a retry of its own
included (new timestamp, new signature), and no one without the signing secret can sign the same body anew, so a
delivery is its signature. Events are claimed by their `event_id`, which Slack keeps across its retries
(`X-Slack-Retry-Num`): a replay of an event and a retry of one already received are both the same event again.
Message events (`message`, `app_mention`) are not claimed here: each is a turn, claimed by its message in the
turn's own transaction (core/turns.py), which also answers a mention delivered both as `app_mention` and as
`message` once.
"""

from __future__ import annotations

from adapters.slack.verify import MAX_AGE_S
from core.requests_seen import first_seen
from core.store.pool import Pool

KEEP_S = 4 * MAX_AGE_S
"""How long a claimed signature is kept: a request is accepted from `MAX_AGE_S` before its timestamp to
`MAX_AGE_S` after it, so up to twice that after it was first seen; doubled again, as the database's clock (which
expires the claims) may differ from this server's (which checks the timestamps)."""

RETRIES_SPAN_S = 6 * 60
"""How long after an event's first delivery Slack may still retry it: at once, after a minute, after five more
(Slack's Events API docs), each given three seconds to be acknowledged."""

EVENT_KEEP_S = RETRIES_SPAN_S + KEEP_S
"""How long a claimed event is kept: its last retry may come `RETRIES_SPAN_S` after the first delivery, and that
retry's own signed bytes can be replayed for `KEEP_S` after it."""

TURN_EVENTS = frozenset({"message", "app_mention"})
"""Events claimed by the turn they start (by their message), not by their `event_id`."""


async def first_delivery(pool: Pool, signature: str) -> bool:
    """True the first time `signature` (a verified `X-Slack-Signature`) is seen; False for a replay."""
    return await first_seen(pool, signature, KEEP_S)


async def first_event(pool: Pool, event_id: str) -> bool:
    """True the first time the event `event_id` is seen; False for a replay or a retry of one already received."""
    return await first_seen(pool, f"event:{event_id}", EVENT_KEEP_S)
