"""The API's part of the HTTP door (bot/front_door.py): a turn the worker would shed is refused on the
door's own loop, before anything reaches the pipeline's.

Under overload most turn requests are shed; refused on the pipeline's loop, each first waited behind
the turns in flight and then cost a body parse and validation there (503 p50 104 ms, p99 0.6–0.9 s at
a load average of 7–11; at the door p50 72 ms, p99 0.46 s, measured side by side). The door only looks
at the worker's admission (`Admission.full`); the pipeline's loop still decides for every request it
gets, so a turn is never taken beyond the limit.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.api.deps import ApiState, overloaded
from adapters.api.errors import error_response

TURN_PATHS = ("/v1/chat", "/v1/chat/stream")
DROP_CONNECTION = "parley.drop_connection"
"""The ASGI scope extension through which an answer gives up on its client: `scope["extensions"][DROP_CONNECTION]
["drop"]()`, callable from any thread, closes the connection at once (bot.front_door.ReadDeadlines offers it).
ASGI has no message for that: an answer that returned unfinished instead had uvicorn log "ASGI callable returned
without completing response" as if the app had failed."""


def door_routes(state: ApiState) -> dict[str, Callable[[ASGIApp], ASGIApp]]:
    """For each turn path: given the app that carries a request to the pipeline's loop, the app that
    answers it on the door's loop (503 when the worker is full, else carried across)."""

    def shed_first(forward: ASGIApp) -> ASGIApp:
        async def route(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] == "POST" and state.admission.full():
                error = overloaded(state)
                await error_response(error.status, error.body, error.headers)(scope, receive, send)
                return
            await forward(scope, receive, send)

        return route

    return dict.fromkeys(TURN_PATHS, shed_first)
