"""What every route needs: the shared state, the caller's API key, and the rate limits on keys."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from adapters.api.admission import Admission, LoopLag, Ticket
from adapters.api.errors import ApiError
from core import metrics
from core.apikeys import ApiKeyInfo, Checked, authenticate, lapsed
from core.pipeline import Pipeline
from core.sessions import KeyedSession, authenticate_session
from core.store.pool import Pool


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """The REST API's knobs; `bot/` fills them from settings."""

    rate_per_min: int = 60
    """Requests per API key per minute, over every /v1 endpoint, counted across all instances."""
    invalid_keys_per_min: int = 10
    """Invalid keys one address may present per minute before it is refused without a lookup."""
    max_file_mb: float = 20.0
    max_body_bytes: int = 64 * 1024 * 1024
    voice_reply: bool = False
    """A text-to-speech engine is wired, so `voice_reply` requests get audio."""
    stream_grace_s: float = 150.0
    """How long a streaming turn may go on finishing after shutdown begins."""
    stream_send_timeout_s: float = 30.0
    """How long one write of a stream (a delta, the final event, a ping) may wait for a client that stopped
    reading before the stream is cut and its connection closed; the turn itself finishes and is saved."""
    max_turns: int = 32
    """API turns one worker takes at once (load shedding); the next is refused with 503 at once."""
    busy_retry_after_s: int = 2
    """What a refused client is told to wait: about one turn's time, when a slot is likely free."""
    max_loop_lag_s: float | None = None
    """No new API turn while the event loop runs its timers this late (the CPU is what runs out);
    None: the limit alone decides."""
    metrics_token: str | None = None
    """The bearer token /metrics asks for; None: see `metrics_keyless`."""
    metrics_keyless: bool = True
    """Without a token, whether /metrics answers anyone (a server on a loopback address) or no one."""


@dataclass(kw_only=True)
class ApiState:
    """One per app: the pipeline and pool it serves, and the turns in flight (for shutdown)."""

    pipeline: Pipeline
    pool: Pool
    config: ApiConfig
    memory_enabled: bool = True
    admin_pool: Pool | None = None
    """The pool the admin API reads across workspaces with (`parley_operator`); None: `pool` is one."""
    environment: dict[str, object] = field(default_factory=dict)
    """The settings the environment sets, the layer under every workspace (bot.settings.environment_layer)."""
    turns: set[asyncio.Task[object]] = field(default_factory=set)
    draining: bool = False
    admission: Admission = field(init=False)
    loop_lag: LoopLag = field(default_factory=LoopLag)

    def __post_init__(self) -> None:
        self.admission = Admission(limit=self.config.max_turns, max_lag_s=self.config.max_loop_lag_s, lag=self.loop_lag)

    def track(self, task: asyncio.Task[object]) -> None:
        """Keep a turn task until it ends, so shutdown can wait for it."""
        self.turns.add(task)
        task.add_done_callback(self.turns.discard)

    async def drain(self, timeout_s: float) -> None:
        """Let the turns in flight finish (up to `timeout_s`)."""
        self.draining = True
        if self.turns:
            await asyncio.wait(list(self.turns), timeout=timeout_s)


async def get_state(request: Request) -> ApiState:
    """`async` although it awaits nothing: FastAPI runs a plain `def` dependency in a worker thread, a
    thread hop (and two wake-ups of the event loop) on every request for one attribute lookup."""
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]
SESSION_COOKIE = "parley_session"
"""The playground's sign-in: an API key in an HttpOnly, SameSite=Strict cookie (adapters/web/app.py)."""
ADMIN_COOKIE = "parley_admin"
"""The admin page's sign-in: an admin key in its own HttpOnly, SameSite=Strict cookie."""
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `parley apikey create --workspace W`.")


async def require_key(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> ApiKeyInfo:
    """The caller's live API key (the bearer token, else the playground's session cookie), counted against
    its rate limit; 401 or 429 otherwise."""
    return await authenticated(request, state, bearer_token(request, credentials))


def bearer_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, cookie: str = SESSION_COOKIE
) -> str:
    """The key a request presents (the bearer token, else the sign-in `cookie`); 401 without one."""
    token = credentials.credentials if credentials is not None else request.cookies.get(cookie)
    return presented(token)


def presented(token: str | None) -> str:
    """The key itself; 401 when the request carried none."""
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "This endpoint needs an API key and the request carried none.",
            "Send `Authorization: Bearer <key>`; an operator creates keys with `parley apikey create --workspace W`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token


async def check_key(state: ApiState, token: str, request: Request) -> Checked:
    """Look the key up and count the request against its limits."""
    return await authenticate(
        state.pool,
        token,
        address=client_address(request),
        per_key=state.config.rate_per_min,
        invalid_per_address=state.config.invalid_keys_per_min,
    )


async def check_key_and_session(
    state: ApiState, token: str, request: Request, *, session_id: str, user_id: str | None
) -> KeyedSession:
    """`check_key`, and the session `session_id` continued or opened for the person the request acts for
    (`acting_for`, with the `user_id` it names), in one statement: a turn's key check."""
    return await authenticate_session(
        state.pool,
        token,
        session_id,
        user_id=user_id,
        address=client_address(request),
        per_key=state.config.rate_per_min,
        invalid_per_address=state.config.invalid_keys_per_min,
    )


def client_address(request: Request) -> str:
    """The address whose invalid keys are counted."""
    return request.client.host if request.client else "unknown"


def accept_key(checked: Checked, state: ApiState, request: Request) -> ApiKeyInfo:
    """The checked key, or the 429 (over a limit) or 401 (not a live key) that refuses the request."""
    if checked.wait_s:
        seconds = max(1, math.ceil(checked.wait_s))
        if checked.key is None:
            why = f"This address sent more than {state.config.invalid_keys_per_min} invalid API keys in a minute."
            fix = f"Wait {seconds} s (see Retry-After), then send a valid key; `parley apikey list` shows live keys."
        else:
            why = f"This API key made more than {state.config.rate_per_min} requests in the last minute."
            fix = f"Wait {seconds} s (see Retry-After) and retry, or spread requests over several keys."
        raise ApiError(429, "rate_limited", why, fix, headers={"Retry-After": str(seconds)})
    if checked.key is None:
        raise ApiError(
            401,
            "unauthorized",
            "The API key is not valid (unknown, mistyped or revoked).",
            "Check the key you send; `parley apikey list` shows live keys, `parley apikey create` makes a new one.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if (lifetime := lapsed(checked.key, datetime.now(UTC))) is not None:
        raise ApiError(
            401,
            "unauthorized",
            f"This sign-in has expired: a browser's sign-in lasts {_duration(lifetime)}.",
            "Sign in again: `parley admin link` for the admin page, the link `parley serve` prints for the playground.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.state.workspace_id = checked.key.workspace_id
    return checked.key


def _duration(lifetime: timedelta) -> str:
    minutes = int(lifetime.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{minutes // 1440} days" if minutes >= 2880 else f"{minutes // 60} hours"


KeyDep = Annotated[ApiKeyInfo, Depends(require_key)]


async def authenticated(request: Request, state: ApiState, token: str | None) -> ApiKeyInfo:
    """The live key `token` names, counted against its rate limit; 401 or 429 otherwise."""
    checked = await check_key(state, presented(token), request)
    return accept_key(checked, state, request)


async def require_admin(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> ApiKeyInfo:
    """An admin key (the bearer token, else the admin page's cookie); 403 for an ordinary key."""
    key = await authenticated(request, state, bearer_token(request, credentials, cookie=ADMIN_COOKIE))
    if not key.admin:
        raise ApiError(
            403,
            "admin_only",
            "This endpoint is for operators and the API key is not an admin key.",
            "Use a key from `parley apikey create --admin --workspace W`.",
        )
    return key


AdminDep = Annotated[ApiKeyInfo, Depends(require_admin)]


def acting_for(key: ApiKeyInfo, user_id: str | None) -> str:
    """The person a request acts for. A key bound to one person (`parley apikey create --user U`) acts only
    for them, and a request naming anyone else is refused with 403 whatever it asks; a workspace-wide key
    acts for the `user_id` it names, and without one everything sent with it is one person."""
    if key.user_id is None:
        return user_id or f"key-{key.key_id}"
    if user_id is not None and user_id != key.user_id:
        raise ApiError(
            403,
            "other_user",
            f"This API key acts only for user {key.user_id!r}, and the request names {user_id!r}.",
            "Leave user_id out (the key's own user is meant) or send the key's own; acting for other people "
            "takes a workspace-wide key (`parley apikey create --workspace W` without --user).",
        )
    return key.user_id


async def admit_turn(state: StateDep) -> AsyncIterator[Ticket]:
    """A slot for one turn, taken before any database work; 503 with Retry-After when there is none.
    A request that fails before its turn starts gives the slot back; a started turn's task holds it."""
    ticket = state.admission.enter()
    if ticket is None:
        raise overloaded(state)
    try:
        yield ticket
    finally:
        if not ticket.handed_over:
            ticket.release()


TicketDep = Annotated[Ticket, Depends(admit_turn)]


def overloaded(state: ApiState) -> ApiError:
    """The 503 of a shed turn (counted as shed). It closes the connection: with several workers on one
    port (bot/workers.py) a connection stays with the worker that accepted it, so the client's retry on a
    new connection may reach one with room, where on this one it would meet the same full worker."""
    metrics.SHED.labels("api").inc()
    return ApiError(
        503,
        "overloaded",
        "This server is answering as many messages as it can right now and took no more; nothing was stored.",
        f"Retry after {state.config.busy_retry_after_s} s (see Retry-After), or spread requests over time.",
        headers={"Retry-After": str(state.config.busy_retry_after_s), "Connection": "close"},
    )


def refuse_when_draining(state: ApiState) -> None:
    if state.draining:
        raise ApiError(
            503,
            "shutting_down",
            "This server is shutting down and takes no new turns.",
            "Retry in a moment; another instance (or this one after restart) will answer.",
            headers={"Retry-After": "5"},
        )
