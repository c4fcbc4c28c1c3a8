"""POST /v1/chat and /v1/chat/stream: one turn, answered whole or as server-sent events."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from adapters.api.deps import (
    StateDep,
    TicketDep,
    accept_key,
    acting_for,
    bearer_scheme,
    bearer_token,
    check_key_and_session,
    refuse_when_draining,
)
from adapters.api.door import DROP_CONNECTION
from adapters.api.errors import ApiError, documented
from adapters.api.schemas import ChatRequest, ChatResponse, DeltaEvent
from core.apikeys import ApiKeyInfo
from core.models import Inbound, Platform, Reply, ToolProgress
from core.sessions import API_CHANNEL, Session, new_session_id

log = logging.getLogger("parley.api")
router = APIRouter(prefix="/v1", tags=["chat"])
ERRORS = documented(401, 403, 404, 409, 413, 422, 429, 503)
IdempotencyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retries of one message carry the same key: it is answered once, also across a crash "
        "of the server (a retry of a turn whose server died is answered anew). A workspace-wide key's "
        "Idempotency-Keys are one set per workspace; a key bound to one person has that person's own.",
    ),
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Caller:
    key: ApiKeyInfo
    session: Session


async def require_caller(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    body: ChatRequest,
) -> Caller:
    """The caller's key and its session in its workspace (opened on first use), found and counted in one
    statement. Session ids are per workspace: another workspace's session of the same id is never seen. A
    request naming a user its key may not act for is counted against the key's limit, then refused."""
    gate = await check_key_and_session(
        state, bearer_token(request, credentials), request,
        session_id=body.session_id or new_session_id(), user_id=body.user_id,
    )
    key = accept_key(gate.checked, state, request)
    acting_for(key, body.user_id)  # the 403 for another user, once the statement has counted the request
    assert gate.session is not None
    if not visible_to(key, gate.session):
        raise session_not_found(gate.session.session_id)
    return Caller(key=key, session=gate.session)


def visible_to(key: ApiKeyInfo, session: Session) -> bool:
    """Whether `key` may read and continue `session`: any of its workspace's, or only its own person's for a
    key bound to one (another person's conversation does not exist for it, as another workspace's does not)."""
    return key.user_id is None or session.user_id == key.user_id


def session_not_found(session_id: str) -> ApiError:
    return ApiError(
        404,
        "session_not_found",
        f"Your workspace has no session {session_id!r} (it never existed or was deleted).",
        "Use the session_id returned by POST /v1/chat, or start a new conversation without one.",
    )


CallerDep = Annotated[Caller, Depends(require_caller)]


STREAM_EVENT = {
    "type": "object",
    "description": "One server-sent event (OpenAPI 3.1: this schema describes each event of the stream).",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["delta", "done"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "delta: {\"text\": ...}; done: the ChatResponse object.",
        },
    },
}


@router.post("/chat", response_model=ChatResponse, responses=ERRORS, summary="Send a message, get the reply")
async def chat(
    body: ChatRequest, ticket: TicketDep, caller: CallerDep, state: StateDep, idempotency: IdempotencyDep = None
) -> ChatResponse:
    refuse_when_draining(state)
    session, inbound = _turn_input(body, caller, idempotency)
    task = asyncio.create_task(state.pipeline.run(inbound, ApiSink(streams=False)))
    state.track(task)
    ticket.hand_to(task)
    reply = await asyncio.shield(task)
    if reply.duplicate:
        raise already_answered(session.session_id)
    return ChatResponse.of(reply, session.session_id)


@router.post(
    "/chat/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`delta` events carrying {text}, then one `done` event carrying the ChatResponse.",
            "content": {"text/event-stream": {"schema": STREAM_EVENT}},
        },
        **ERRORS,
    },
    summary="Send a message, stream the reply",
)
async def chat_stream(
    body: ChatRequest, ticket: TicketDep, caller: CallerDep, state: StateDep, idempotency: IdempotencyDep = None
) -> EventSourceResponse:
    refuse_when_draining(state)
    session, inbound = _turn_input(body, caller, idempotency)
    sink = ApiSink(streams=True)

    async def run() -> Reply:
        try:
            return await state.pipeline.run(inbound, sink)
        finally:
            sink.deltas.put_nowait(None)

    task = asyncio.create_task(run())
    state.track(task)
    ticket.hand_to(task)

    async def events() -> AsyncIterator[ServerSentEvent]:
        while (delta := await sink.deltas.get()) is not None:
            yield ServerSentEvent(event="delta", data=DeltaEvent(text=delta).model_dump_json())
        reply = await asyncio.shield(task)
        yield ServerSentEvent(event="done", data=ChatResponse.of(reply, session.session_id).model_dump_json())

    return CutWhenUnread(
        events(), ping=15, shutdown_grace_period=state.config.stream_grace_s,
        send_timeout=state.config.stream_send_timeout_s,
    )


class CutWhenUnread(EventSourceResponse):
    """A turn's event stream that ends, with one warning, once a write has waited `send_timeout` for a client
    that stopped reading: such a client held its connection, the stream's generator and every delta left to
    send for good. The turn runs apart from its stream, so it is finished and saved all the same. The connection
    is dropped through the server's `DROP_CONNECTION` extension (`parley serve` offers it); a server without
    it closes the connection itself once the stream returns unfinished, and logs that as an error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except* SendTimeoutError:
            log.warning("stream cut: the client read nothing for %.0f s (its turn is finished and saved all the same)",
                        self.send_timeout)
            if (drop := scope.get("extensions", {}).get(DROP_CONNECTION)) is not None:
                drop["drop"]()


class ApiSink:
    """A turn's reply for an API caller: deltas queued for the event stream; the reply itself is the
    response body. No platform message carries it, so no delivery is recorded: POST /v1/feedback rates
    a reply by its turn_id (core.feedback.rated_turn)."""

    def __init__(self, *, streams: bool) -> None:
        self.streams = streams
        self.deltas: asyncio.Queue[str | None] = asyncio.Queue()

    async def delta(self, text: str) -> None:
        self.deltas.put_nowait(text)

    async def status(self, text: str) -> None:
        return None

    async def tool(self, progress: ToolProgress) -> None:
        return None

    async def finish(self, reply: Reply) -> Sequence[str]:
        return ()


def _turn_input(body: ChatRequest, caller: Caller, idempotency: str | None) -> tuple[Session, Inbound]:
    key, session = caller.key, caller.session
    user_id = acting_for(key, body.user_id)
    inbound = Inbound(
        platform=Platform.API,
        workspace_id=key.workspace_id,
        channel_id=API_CHANNEL,
        thread_id=session.session_id,
        user_id=user_id,
        user_name=user_id,
        channel_name=API_CHANNEL,
        text=body.message,
        event_id=idempotency_event(key, idempotency) if idempotency else uuid.uuid4().hex,
        is_dm=True,
        attachments=tuple(a.to_attachment() for a in body.attachments),
        voice_reply=body.voice_reply,
    )
    return session, inbound


def idempotency_event(key: ApiKeyInfo, idempotency: str) -> str:
    """The event id a message's Idempotency-Key claims. A workspace-wide key's is one per workspace, as it
    always was; a key bound to one person gets that person's own (their user id quoted, so no `:` in it can
    run into the key), so another person's key that guesses it can neither block their message with a 409
    nor take it over."""
    if key.user_id is None:
        return f"idempotency:{idempotency}"
    return f"idempotency@{quote(key.user_id, safe='')}:{idempotency}"


def already_answered(session_id: str) -> ApiError:
    return ApiError(
        409,
        "already_answered",
        "A message with this Idempotency-Key was already taken (answered, or being answered now).",
        f"Read the answer with GET /v1/sessions/{session_id}; send a new Idempotency-Key for a new message.",
    )
