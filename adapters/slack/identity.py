"""Who the bot token is, asked of Slack once per process rather than once per event.

Bolt's own single-workspace authorization keeps auth.test's answer only once its first call has returned,
so a burst of events on a fresh process (a deploy, a restarted worker) made one auth.test per event: 200
in a load run's Slack phase of 200 concurrent conversations. Slack rate-limits auth.test, and an event
whose authorization fails after Parley acknowledged it is lost. Given as Bolt's `authorize` function, this
shares one call among concurrent events and keeps its answer; a failed call is not kept, so the next event
asks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse


def bot_authorize(client: AsyncWebClient, token: str) -> Callable[[str | None], Awaitable[AuthorizeResult]]:
    """Bolt's `authorize` for one workspace's bot token: one shared auth.test, kept for the process. A plain
    function, as Bolt passes it the arguments its parameters name (`user_id`: the event's user)."""
    answer: asyncio.Future[AsyncSlackResponse] | None = None

    async def authorize(user_id: str | None) -> AuthorizeResult:
        nonlocal answer
        if answer is None or (answer.done() and answer.exception() is not None):
            answer = asyncio.ensure_future(client.auth_test(token=token))
        identity = await asyncio.shield(answer)
        return AuthorizeResult(
            enterprise_id=identity.get("enterprise_id"),
            team_id=identity.get("team_id"),
            bot_id=identity.get("bot_id"),
            bot_user_id=identity.get("user_id"),
            bot_token=token,
            user_id=user_id,
            bot_scopes=identity.headers.get("x-oauth-scopes"),
        )

    return authorize
